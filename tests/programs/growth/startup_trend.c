/* Startup, then a trend: ~1.5 s of "imports" that allocate ~20 MB in 160,000
 * small blocks (kept: modules, tables), then ~2 s of serving in which a
 * global list grows by ~3 KB every 10 ms tick (~300 KB/s): growing, judged on
 * the serving phase. */
#include "growth_common.h"

struct imported {
    struct imported *next;
    char data[120];
};
static struct imported *modules;

struct entry {
    struct entry *next;
    char line[248];
};
static struct entry *log_entries;

static __attribute__((noinline)) void import_module(int blocks) {
    for (int i = 0; i < blocks; i++) {
        struct imported *m = malloc(sizeof *m); /* 128 bytes */
        m->data[0] = (char)i;
        m->next = modules;
        modules = m;
    }
}

static __attribute__((noinline)) void log_request(int id) {
    struct entry *e = malloc(sizeof *e); /* @site:startup_trend_log */
    snprintf(e->line, sizeof e->line, "GET /item/%d 200", id);
    e->next = log_entries;
    log_entries = e;
}

int main(void) {
    for (int step = 0; step < 1000; step++) { /* 1000 x 160 blocks x 128 B = 20.5 MB */
        import_module(160);
        sleep_us(1500);
    }
    for (int tick = 0; tick < 200; tick++) { /* 200 x 12 x 256 B = 614 KB */
        for (int r = 0; r < 12; r++) {
            churn(6);
            log_request(tick * 12 + r);
        }
        sleep_ms(10);
    }
    while (log_entries) {
        struct entry *e = log_entries;
        log_entries = e->next;
        free(e);
    }
    while (modules) {
        struct imported *m = modules;
        modules = m->next;
        free(m);
    }
    return 0;
}
