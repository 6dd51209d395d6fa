/*
 * Two threads of one OpenMP region handing work to each other (_update.pyx, _epoch.pyx):
 * a shared counter of tasks taken, and a flag one thread raises once its writes are
 * done, which the other waits for before reading them (release / acquire).
 */
#ifndef EQCORE_SYNC_H
#define EQCORE_SYNC_H

/* The counter's value before this call's increment: the caller's task. */
static inline int eq_take_next(int *counter) { return __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED); }

/* Raise the flag: everything written before is visible to a thread that sees it raised. */
static inline void eq_signal(int *flag) { __atomic_store_n(flag, 1, __ATOMIC_RELEASE); }

/* Wait until the flag is raised (a spin: the waits are microseconds). */
static inline void eq_wait(int *flag) {
    while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE)) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    }
}

#endif
