#define _GNU_SOURCE
#include "CDatapath.h"
#include <errno.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

_Static_assert(sizeof(tandem_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");

int tandem_recvmmsg(int fd, tandem_mmsghdr *vec, unsigned int vlen, int flags) {
    return recvmmsg(fd, (struct mmsghdr *)vec, vlen, flags, NULL);
}

int tandem_sendmmsg(int fd, tandem_mmsghdr *vec, unsigned int vlen, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)vec, vlen, flags);
}

long long tandem_receive_timestamp_ns(struct msghdr *message) {
    if (message->msg_control == NULL) return -1;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(message); c != NULL; c = CMSG_NXTHDR(message, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_TIMESTAMPNS && c->cmsg_len >= CMSG_LEN(sizeof(struct timespec))) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof ts);
            return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
        }
    }
    return -1;
}

int tandem_epoll_create(void) { return epoll_create1(EPOLL_CLOEXEC); }

int tandem_epoll_add_readable(int epfd, int fd) {
    struct epoll_event ev = {0};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

int tandem_epoll_remove(int epfd, int fd) {
    struct epoll_event ev = {0};
    return epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev);
}

int tandem_epoll_wait(int epfd, int *fds, int max, int timeout_ms) {
    struct epoll_event events[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, events, max, timeout_ms);
    for (int i = 0; i < n; i++) fds[i] = events[i].data.fd;
    return n;
}

int tandem_epoll_wait_ns(int epfd, int *fds, int max, long long timeout_ns) {
    struct epoll_event events[256];
    if (max > 256) max = 256;
    struct timespec t = { .tv_sec = timeout_ns / 1000000000LL, .tv_nsec = timeout_ns % 1000000000LL };
    int n = epoll_pwait2(epfd, events, max, timeout_ns < 0 ? NULL : &t, NULL);
    for (int i = 0; i < n; i++) fds[i] = events[i].data.fd;
    return n;
}

int tandem_eventfd(void) { return eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC); }

int tandem_eventfd_signal(int fd) {
    uint64_t one = 1;
    return (int)write(fd, &one, sizeof one);
}

void tandem_eventfd_drain(int fd) {
    uint64_t value;
    while (read(fd, &value, sizeof value) > 0) {}
}

void tandem_sleep_until_ns(unsigned long long deadline) {
    struct timespec t = { .tv_sec = (time_t)(deadline / 1000000000ULL), .tv_nsec = (long)(deadline % 1000000000ULL) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {}
}

int tandem_set_timer_slack_ns(unsigned long nanoseconds) { return prctl(PR_SET_TIMERSLACK, nanoseconds, 0, 0, 0); }

int tandem_set_thread_name(const char *name) { return prctl(PR_SET_NAME, (unsigned long)name, 0, 0, 0); }
