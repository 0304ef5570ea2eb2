/* A static server for the port-forwarding tests and bench: no registry is reachable, so the image is
 * built from this one file. TCP 8000 answers "tcp-ok", UDP 8001 echoes "udp-ok", TCP 8002 sends
 * BULK_MIB MiB of zeros (for throughput) then closes. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <unistd.h>

#define BULK_MIB 100

static int listener(int type, int port) {
    int fd = socket(AF_INET, type, 0), one = 1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = INADDR_ANY;
    a.sin_port = htons(port);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    if (type == SOCK_STREAM) listen(fd, 16);
    return fd;
}

static void bulk(int fd) {
    static char block[1 << 16];
    for (long sent = 0; sent < (long)BULK_MIB << 20;) {
        ssize_t n = write(fd, block, sizeof block);
        if (n <= 0) break;
        sent += n;
    }
}

int main(void) {
    int t = listener(SOCK_STREAM, 8000), u = listener(SOCK_DGRAM, 8001), b = listener(SOCK_STREAM, 8002);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, _exit);
    for (;;) {
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(t, &fds);
        FD_SET(u, &fds);
        FD_SET(b, &fds);
        if (select(b + 1, &fds, 0, 0, 0) < 0) continue;
        if (FD_ISSET(t, &fds)) {
            int c = accept(t, 0, 0);
            if (c >= 0) { write(c, "tcp-ok\n", 7); close(c); }
        }
        if (FD_ISSET(u, &fds)) {
            char buf[64];
            struct sockaddr_in peer;
            socklen_t len = sizeof peer;
            if (recvfrom(u, buf, sizeof buf, 0, (struct sockaddr *)&peer, &len) >= 0)
                sendto(u, "udp-ok\n", 7, 0, (struct sockaddr *)&peer, len);
        }
        if (FD_ISSET(b, &fds)) {
            int c = accept(b, 0, 0);
            if (c >= 0) { bulk(c); close(c); }
        }
    }
}
