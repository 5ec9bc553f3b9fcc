/* signals.c: turning a batch system's termination signals into a clean,
 * checkpointed stop (the loop's and the stream's).
 *
 * The handler sets one flag; the loop or stream that caught the signals
 * reads it at its next safe point, checkpoints, and returns
 * EMBER_INTERRUPTED. The flag is the library's one piece of process-wide
 * state besides the HDF5 lock: a handler can reach nothing else. A signal
 * that was ignored when catching starts stays ignored (a shell's background
 * job ignores SIGINT on purpose), and a second signal of the same kind
 * takes the default action (SA_RESETHAND): pressing Ctrl-C twice, or a
 * scheduler that insists, stops the process at once. That is safe: a
 * checkpoint being written is only a .tmp file until it commits.
 */
#include "internal.h"

#include <errno.h>
#include <string.h>

static volatile sig_atomic_t caught_signal;

/* ember_loop_catch_early's catching, until a loop or stream takes it over
 * (with the actions from before it, which that one puts back). */
static ember__signals early;

static void on_signal(int sig)
{
    caught_signal = sig;
}

int ember__signals_catch(ember__signals *s, const int *sigs, int n, char *msg)
{
    if (early.on) { /* the early catching becomes this one, a signal held */
        *s = early;
        memset(&early, 0, sizeof early);
        return EMBER_OK;
    }
    memset(s, 0, sizeof *s);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_RESETHAND;
    caught_signal = 0;
    for (int i = 0; i < n && i < EMBER__MAX_SIGNALS; i++) {
        s->sig[i] = sigs[i];
        if (sigaction(sigs[i], NULL, &s->old[i]) != 0)
            return ember__err(msg, EMBER_EIO, "sigaction: %s", strerror(errno));
        if (!(s->old[i].sa_flags & SA_SIGINFO) && s->old[i].sa_handler == SIG_IGN)
            continue;
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return ember__err(msg, EMBER_EIO, "sigaction: %s", strerror(errno));
        s->have_old[i] = 1;
    }
    s->on = 1;
    return EMBER_OK;
}

void ember__signals_restore(ember__signals *s)
{
    for (int i = 0; i < EMBER__MAX_SIGNALS; i++)
        if (s->have_old[i])
            sigaction(s->sig[i], &s->old[i], NULL);
    memset(s, 0, sizeof *s);
}

int ember__signals_caught(const ember__signals *s)
{
    return s->on && caught_signal != 0;
}

int ember_loop_catch_early(char *msg)
{
    ember__msg_clear(msg);
    static const int sigs[3] = {SIGTERM, SIGINT, SIGUSR1};
    if (early.on)
        return EMBER_OK;
    return ember__signals_catch(&early, sigs, 3, msg);
}
