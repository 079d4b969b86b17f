#ifndef CCL_SHIMS_H
#define CCL_SHIMS_H

#include <stdint.h>

/// futex(FUTEX_WAIT) on a word in a MAP_SHARED mapping (not FUTEX_PRIVATE: other processes wake it).
/// Sleeps while `*word == expected`, at most `timeout_ns` (negative: no limit).
/// Returns 0 when woken (or spuriously), -1 with errno set otherwise (EAGAIN, ETIMEDOUT, EINTR).
int ccl_futex_wait(uint32_t *word, uint32_t expected, int64_t timeout_ns);

/// futex(FUTEX_WAKE) on a shared word: wakes at most `count` waiters.
/// Returns the number woken, or -1 with errno set.
int ccl_futex_wake(uint32_t *word, int32_t count);

/// A CPU spin-loop hint (`pause` on x86, `yield` on ARM).
static inline void ccl_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Fills `cpus` with the CPUs this process may run on (at most `capacity`); returns how many, or -1.
int ccl_allowed_cpus(int *cpus, int capacity);
/// Pins the calling thread to `cpu` (sched_setaffinity); 0 or -1 with errno.
int ccl_bind_to_cpu(int cpu);

/// prctl(PR_SET_PDEATHSIG, signal): this process gets `signal` when the thread that started it
/// ends (prctl is variadic). 0 or -1 with errno.
int ccl_set_parent_death_signal(int signal);

/// The file a dlopen handle mapped (dlinfo RTLD_DI_LINKMAP), or NULL; valid while it is open.
const char *ccl_dl_loaded_path(void *handle);

#endif
