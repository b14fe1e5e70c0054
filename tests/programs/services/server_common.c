/* The request loop shared by leaky_server.c and cache_server.c (each
 * #includes this file and defines `keep`, `store_size` and `store_free`).
 *
 * usage: SERVER PORT REQUESTS
 *
 * Listens on 127.0.0.1:PORT (0: any free port), prints "listening
 * port=<port>" on stdout, serves REQUESTS requests (one per connection: a
 * line "GET <path> <agent>\n", answered by "200 <id> <bytes> <checksum>\n"),
 * then frees everything and exits 0. Gives up (exit 2, still freeing
 * everything) after IDLE_LIMIT_MS without a connection or RUN_LIMIT_MS in
 * all, so a test whose load generator died cannot hang on it.
 *
 * Per request, the heap goes up and down (the sawtooth): the connection's
 * read buffer, the parsed request, the rendered response; only what `keep`
 * stores outlives the request. Between two requests nothing else is live. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IDLE_LIMIT_MS 5000
#define RUN_LIMIT_MS 20000
#define READ_TIMEOUT_S 2
#define REQUEST_MAX 1024
#define LOG_LINE_BYTES 140

/* A parsed request: temporary, freed when the response is sent. */
struct request {
    char method[8];
    char *path;
    char *agent;
    unsigned id;
};

/* What a server remembers of a request. */
struct record {
    struct record *next;
    unsigned id;
    int status;
    size_t bytes;
    long when_ms;
    char *line; /* the access-log line, strdup'd */
};

/* Defined by the server: remember `line` (the request's access-log line). */
static void keep(const struct request *rq, int status, size_t bytes, const char *line);
/* How many records the server holds. */
static long store_size(void);
/* Frees every record (at shutdown). */
static void store_free(void);

static long now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void say(const char *fmt, long a, long b) {
    char buf[128];
    int n = snprintf(buf, sizeof buf, fmt, a, b);
    if (n > 0 && write(1, buf, (size_t)n) < 0)
        exit(3);
}

static __attribute__((noinline)) struct request *parse_request(const char *text) {
    char method[8], path[256], agent[128];
    if (sscanf(text, "%7s %255s %127s", method, path, agent) != 3)
        return NULL;
    const char *digits = strrchr(path, '/');
    struct request *rq = malloc(sizeof *rq);
    if (!rq)
        return NULL;
    memcpy(rq->method, method, sizeof rq->method);
    rq->path = strdup(path);
    rq->agent = strdup(agent);
    rq->id = digits ? (unsigned)strtoul(digits + 1, NULL, 10) : 0;
    return rq;
}

static void free_request(struct request *rq) {
    free(rq->path);
    free(rq->agent);
    free(rq);
}

/* Renders the response "page": a few KiB that vary with the item, and a
 * checksum of it so that nothing is optimized away. */
static __attribute__((noinline)) unsigned render(const struct request *rq, size_t *bytes) {
    size_t n = 2048 + (rq->id % 8) * 512;
    unsigned char *page = malloc(n);
    char *title = malloc(64);
    if (!page || !title) {
        free(page);
        free(title);
        *bytes = 0;
        return 0;
    }
    snprintf(title, 64, "item %06u", rq->id);
    for (size_t i = 0; i < n; i++)
        page[i] = (unsigned char)(title[i % strlen(title)] + i);
    unsigned sum = 0;
    for (size_t i = 0; i < n; i++)
        sum = sum * 31 + page[i];
    free(title);
    free(page);
    *bytes = n;
    return sum;
}

/* Reads one request line; 0 on success. */
static int read_request(int fd, char *buf, size_t cap) {
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t r = read(fd, buf + len, cap - 1 - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = 0;
        if (memchr(buf, '\n', len))
            return 0;
    }
    return -1;
}

/* Serves one connection; 0 when a request was answered. */
static int serve(int fd) {
    long started_ms = now_ms();
    struct timeval tv = {READ_TIMEOUT_S, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    char *buf = malloc(REQUEST_MAX);
    if (!buf)
        return -1;
    int rc = -1;
    if (read_request(fd, buf, REQUEST_MAX) == 0) {
        struct request *rq = parse_request(buf);
        if (rq) {
            size_t bytes;
            unsigned sum = render(rq, &bytes);
            /* A fixed-width access-log line (LOG_LINE_BYTES with its NUL):
             * every record is the same size. */
            char line[LOG_LINE_BYTES + 16];
            long t = now_ms();
            snprintf(line, sizeof line, "%010ld.%03ld 127.0.0.1 %-4.4s %-32.32s HTTP/1.0 %3d %7zu %6ld %-48.48s",
                     t / 1000, t % 1000, rq->method, rq->path, 200, bytes, t - started_ms, rq->agent);
            keep(rq, 200, bytes, line);
            char reply[96];
            int n = snprintf(reply, sizeof reply, "200 %06u %zu %08x\n", rq->id, bytes, sum);
            if (write(fd, reply, (size_t)n) == n)
                rc = 0;
            free_request(rq);
        }
    }
    free(buf);
    return rc;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s PORT REQUESTS\n", argv[0]);
        return 64;
    }
    int port = atoi(argv[1]);
    long requests = atol(argv[2]);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        perror("socket");
        return 1;
    }
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof addr;
    if (bind(lfd, (struct sockaddr *)&addr, sizeof addr) != 0 || listen(lfd, 128) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
        perror("bind/listen");
        close(lfd);
        return 1;
    }
    say("listening port=%ld pid=%ld\n", (long)ntohs(addr.sin_port), (long)getpid());

    long start = now_ms(), last = start, served = 0, failed = 0;
    int status = 0;
    while (served < requests) {
        struct pollfd p = {lfd, POLLIN, 0};
        int r = poll(&p, 1, 200);
        long t = now_ms();
        if (t - start > RUN_LIMIT_MS || t - last > IDLE_LIMIT_MS) {
            fprintf(stderr, "server: giving up after %ld of %ld requests\n", served, requests);
            status = 2;
            break;
        }
        if (r <= 0)
            continue;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        last = t;
        if (serve(fd) == 0)
            served++;
        else
            failed++;
        close(fd);
    }
    long kept = store_size();
    store_free();
    close(lfd);
    say("served=%ld kept=%ld\n", served, kept);
    if (failed)
        fprintf(stderr, "server: %ld connection(s) without an answered request\n", failed);
    return status;
}
