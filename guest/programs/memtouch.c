/* memtouch N: map N MiB of anonymous memory, fault every 4 KiB page in (one write per page)
 * and report the time taken, measured with CLOCK_MONOTONIC.
 *   --populate    map with MAP_POPULATE instead of touching (the kernel faults the pages in)
 *   --check-zero  read every byte of every page before its first write; count non-zero pages
 *   --hold S      keep the memory for S seconds (-1 = forever) or until stdin closes, then free
 * Output: "memtouch: N MiB in X.XXX ms (Y us/page)". Exit status 2 if --check-zero found data. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int usage(void)
{
	fprintf(stderr, "usage: memtouch [--populate] [--check-zero] [--hold S] N_MiB\n");
	return 1;
}

/* 1 if the page holds any non-zero byte (word-wise scan, then it is all read) */
static int page_nonzero(const volatile uint32_t *w)
{
	uint32_t acc = 0;
	for (unsigned i = 0; i < PAGE / 4; i++)
		acc |= w[i];
	return acc != 0;
}

/* wait up to sec seconds (sec < 0: forever) or until stdin reaches EOF / error */
static void hold(long sec)
{
	double end = now_ms() + sec * 1e3;
	char buf[256];
	for (;;) {
		int timeout = -1;
		if (sec >= 0) {
			double left = end - now_ms();
			if (left <= 0)
				return;
			timeout = left > 1e9 ? 1000000000 : (int)left + 1;
		}
		struct pollfd p = { .fd = 0, .events = POLLIN };
		int r = poll(&p, 1, timeout);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 || (p.revents & (POLLERR | POLLNVAL)))
			return;
		if (r > 0 && read(0, buf, sizeof buf) <= 0)
			return; /* stdin closed */
	}
}

int main(int argc, char **argv)
{
	int populate = 0, check = 0, have_hold = 0;
	long hold_s = 0;
	const char *nstr = NULL;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--populate"))
			populate = 1;
		else if (!strcmp(argv[i], "--check-zero"))
			check = 1;
		else if (!strcmp(argv[i], "--hold") && i + 1 < argc) {
			char *e;
			hold_s = strtol(argv[++i], &e, 10);
			if (*e)
				return usage();
			have_hold = 1;
		} else if (argv[i][0] != '-' && !nstr)
			nstr = argv[i];
		else
			return usage();
	}
	if (!nstr)
		return usage();
	char *e;
	unsigned long mib = strtoul(nstr, &e, 10);
	if (*e || mib == 0 || mib > 4095)
		return usage();

	size_t len = (size_t)mib << 20, pages = len / PAGE;
	unsigned long nonzero = 0;

	double t0 = now_ms();
	uint8_t *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
	if (m == MAP_FAILED) {
		perror("memtouch: mmap");
		return 1;
	}
	if (!populate) {
		for (size_t i = 0; i < pages; i++) {
			volatile uint8_t *p = m + i * PAGE;
			if (check)
				nonzero += page_nonzero((const volatile uint32_t *)p);
			*p = 1;
		}
	}
	double t1 = now_ms();
	if (populate && check)
		for (size_t i = 0; i < pages; i++)
			nonzero += page_nonzero((const volatile uint32_t *)(m + i * PAGE));

	double ms = t1 - t0;
	printf("memtouch: %lu MiB in %.3f ms (%.3f us/page)%s\n", mib, ms, ms * 1e3 / pages,
	       populate ? " [populate]" : "");
	if (check)
		printf("memtouch: check-zero: %lu non-zero pages of %zu\n", nonzero, pages);
	fflush(stdout);

	if (have_hold)
		hold(hold_s);
	munmap(m, len);
	return check && nonzero ? 2 : 0;
}
