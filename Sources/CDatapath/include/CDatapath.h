// Thin C shims over Linux socket calls that Swift cannot reach through Glibc:
// epoll (packed struct), eventfd, recvmmsg/sendmmsg (need _GNU_SOURCE).
#pragma once
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <netinet/in.h>

/// The layout of `struct mmsghdr` (sys/socket.h under _GNU_SOURCE).
typedef struct {
    struct msghdr msg_hdr;
    unsigned int msg_len;
} tandem_mmsghdr;

int tandem_recvmmsg(int fd, tandem_mmsghdr *vec, unsigned int vlen, int flags);
int tandem_sendmmsg(int fd, tandem_mmsghdr *vec, unsigned int vlen, int flags);
/// The SO_TIMESTAMPNS receive time in a received message's ancillary data (CLOCK_REALTIME,
/// nanoseconds), or -1 when it carries none.
long long tandem_receive_timestamp_ns(struct msghdr *message);

int tandem_epoll_create(void);
/// Adds `fd` for readability (level-triggered).
int tandem_epoll_add_readable(int epfd, int fd);
int tandem_epoll_remove(int epfd, int fd);
/// Waits up to `timeout_ms` (-1: forever) and writes the ready descriptors to `fds`.
int tandem_epoll_wait(int epfd, int *fds, int max, int timeout_ms);
/* The same with a timeout in nanoseconds (epoll_pwait2, Linux 5.11); negative waits forever. */
int tandem_epoll_wait_ns(int epfd, int *fds, int max, long long timeout_ns);

int tandem_eventfd(void);
int tandem_eventfd_signal(int fd);
void tandem_eventfd_drain(int fd);

/// Sleeps until `deadline` on CLOCK_MONOTONIC (nanoseconds); returns at once when it has passed.
void tandem_sleep_until_ns(unsigned long long deadline);
/// PR_SET_TIMERSLACK for the calling thread, so short sleeps end on time.
int tandem_set_timer_slack_ns(unsigned long nanoseconds);
/// PR_SET_NAME: the calling thread's name as the kernel shows it (cut to 15 bytes).
int tandem_set_thread_name(const char *name);
