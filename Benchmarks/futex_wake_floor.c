// The floor under the queue's idle wake-up: one process sleeps in FUTEX_WAIT on a shared word for
// IDLE seconds, another stores to the word and calls FUTEX_WAKE; the sleeper reports the time from
// just before the store to its return from futex. Prints one JSON object with every sample.
//   gcc -O2 -o futex_wake_floor futex_wake_floor.c && ./futex_wake_floor [IDLE_S=1] [ROUNDS=5]
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

struct shared {
    _Atomic uint32_t word;
    _Atomic uint64_t sent;
    uint64_t latency[256];
};

int main(int argc, char **argv) {
    double idle = argc > 1 ? atof(argv[1]) : 1.0;
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (rounds < 1 || rounds > 256) rounds = 5;
    struct shared *s = mmap(0, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (s == MAP_FAILED) return 1;
    pid_t child = fork();
    if (child == 0) {
        for (int r = 0; r < rounds; r++) {
            uint32_t seen = (uint32_t)r;
            while (atomic_load(&s->word) == seen) syscall(SYS_futex, &s->word, FUTEX_WAIT, seen, 0, 0, 0);
            s->latency[r] = now_ns() - atomic_load(&s->sent);
        }
        _exit(0);
    }
    for (int r = 0; r < rounds; r++) {
        usleep((useconds_t)(idle * 1e6));
        atomic_store(&s->sent, now_ns());
        atomic_store(&s->word, (uint32_t)r + 1);
        syscall(SYS_futex, &s->word, FUTEX_WAKE, 1, 0, 0, 0);
        usleep(2000);
    }
    waitpid(child, 0, 0);
    printf("{\"idle_s\": %.3f, \"wake_ns\": [", idle);
    for (int r = 0; r < rounds; r++) printf("%s%lu", r ? ", " : "", (unsigned long)s->latency[r]);
    printf("]}\n");
    return 0;
}
