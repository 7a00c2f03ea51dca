/*
 * devinit-check: guest self-check for VIRTIO_BALLOON_F_DEVICE_INIT_REPORTED (6)
 * and VIRTIO_BALLOON_F_DEVICE_INIT_ON_INFLATE (7) (guest/patches/0002-*).
 *
 * The kernel does the precise checking (virtio_balloon.devinit_verify=1):
 *  - the driver checks every page the device claims to have initialised before
 *    it trusts it (deflate of an inflate-bitmap page, reported range covered by
 *    the used length): verify_checked / verify_bad;
 *  - the page allocator checks every PageZeroed page before it skips zeroing
 *    it: alloc_init_skipped / alloc_verify_bad.
 * This program enables that check, runs a memory workload that makes the
 * allocator hand out the marked pages (anonymous page faults use __GFP_ZERO on
 * x86, so marked pages skip their zeroing there), checks from user space that
 * every fresh anonymous page reads as zero (end-to-end: also catches a wrong
 * skip when verification is off), and reads the counters from
 *   /sys/kernel/debug/virtio-balloon-devinit
 *
 * Usage:
 *   devinit-check [check] [MiB]  verify on, workload of MiB (default 64), report;
 *                                exit 1 if anything bad was found, 2 on error
 *   devinit-check dirty [MiB]    fill MiB of anonymous memory with a non-zero
 *                                pattern and free it (so free pages hold stale
 *                                data and a lying device is visible)
 *   devinit-check verify 0|1     set virtio_balloon.devinit_verify
 *   devinit-check stats          print the debugfs counters
 *
 * Output of check: "devinit-check: checked=N bad=M" (+ details), where
 *   checked = verify_checked + alloc_verify_bad (since boot)
 *             + alloc_init_skipped (during this run, verified) + user pages,
 *   bad     = verify_bad + alloc_verify_bad (since boot) + non-zero user pages.
 * Put virtio_balloon.devinit_verify=1 on the kernel command line (or run
 * "devinit-check verify 1" first) so deflate/report-time checks happen too.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#define STATS_PATH "/sys/kernel/debug/virtio-balloon-devinit"
#define VERIFY_PATH "/sys/module/virtio_balloon/parameters/devinit_verify"
#define PAGE ((size_t)4096)

struct counter {
	const char *name;
	long val;
};

static struct counter counters[] = {
	{ "init_on_inflate", 0 }, { "init_reported", 0 }, { "fill", 0 },
	{ "verify", 0 }, { "inflate_marked", 0 }, { "report_covered", 0 },
	{ "report_marked", 0 }, { "deflate_preinit", 0 },
	{ "free_init_skipped", 0 }, { "deflate_zeroed", 0 },
	{ "balloon_alloc_noinit", 0 }, { "alloc_init_skipped", 0 },
	{ "verify_checked", 0 }, { "verify_bad", 0 }, { "alloc_verify_bad", 0 },
};
#define NCOUNTERS (sizeof(counters) / sizeof(counters[0]))

static void ensure_debugfs(void)
{
	struct stat st;

	if (stat(STATS_PATH, &st) == 0)
		return;
	mkdir("/sys", 0755);
	mkdir("/sys/kernel", 0755);
	mkdir("/sys/kernel/debug", 0755);
	if (mount("debugfs", "/sys/kernel/debug", "debugfs", 0, NULL) != 0 &&
	    errno != EBUSY)
		perror("devinit-check: mount debugfs");
}

/* Fills vals[] (indexed like counters[]); returns 0 on success. */
static int read_stats(long *vals, int print)
{
	char name[64];
	long v;
	FILE *f;
	size_t i;

	for (i = 0; i < NCOUNTERS; i++)
		vals[i] = 0;
	f = fopen(STATS_PATH, "r");
	if (!f) {
		perror("devinit-check: " STATS_PATH);
		return -1;
	}
	while (fscanf(f, "%63s %ld", name, &v) == 2) {
		if (print)
			printf("  %-26s %ld\n", name, v);
		for (i = 0; i < NCOUNTERS; i++)
			if (!strcmp(name, counters[i].name))
				vals[i] = v;
	}
	fclose(f);
	return 0;
}

static long get(const long *vals, const char *name)
{
	size_t i;

	for (i = 0; i < NCOUNTERS; i++)
		if (!strcmp(counters[i].name, name))
			return vals[i];
	return 0;
}

static int set_verify(const char *val)
{
	FILE *f = fopen(VERIFY_PATH, "w");

	if (!f || fputs(val, f) < 0 || fclose(f) != 0) {
		perror("devinit-check: " VERIFY_PATH);
		return -1;
	}
	return 0;
}

static unsigned char *map_anon(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		perror("devinit-check: mmap");
		return NULL;
	}
	return p;
}

static int dirty(size_t mib)
{
	size_t bytes = mib << 20, i;
	unsigned char *p = map_anon(bytes);

	if (!p)
		return 2;
	for (i = 0; i < bytes; i += PAGE)
		memset(p + i, 0xA5 ^ (unsigned char)(i >> 12), PAGE);
	munmap(p, bytes);
	printf("devinit-check: dirtied %zu MiB\n", mib);
	return 0;
}

/*
 * Fault in fresh anonymous pages (each must read as zero), then write them
 * so that the memory is dirty again when it is freed. Returns bad pages.
 */
static long workload(size_t mib, long *scanned)
{
	size_t bytes = mib << 20, i, j;
	unsigned char *p = map_anon(bytes);
	long bad = 0;

	if (!p)
		return -1;
	for (i = 0; i < bytes; i += PAGE) {
		const unsigned long *w = (const unsigned long *)(p + i);

		/* The read fault maps the zero page; write first, then check. */
		p[i + PAGE - 1] = 0;
		for (j = 0; j < PAGE / sizeof(*w); j++) {
			if (w[j]) {
				if (bad < 10)
					fprintf(stderr,
						"devinit-check: fresh page %zu not zero at +%zu\n",
						i / PAGE, j * sizeof(*w));
				bad++;
				break;
			}
		}
		memset(p + i, 0x5A, PAGE);
		(*scanned)++;
	}
	munmap(p, bytes);
	return bad;
}

int main(int argc, char **argv)
{
	long before[NCOUNTERS], after[NCOUNTERS], scanned = 0, ubad;
	const char *cmd = argc > 1 ? argv[1] : "check";
	size_t mib = 64;
	long checked, bad;
	int round;

	if (argc > 1 && cmd[0] >= '0' && cmd[0] <= '9') {
		mib = strtoul(cmd, NULL, 0);
		cmd = "check";
	} else if (argc > 2) {
		mib = strtoul(argv[2], NULL, 0);
	}

	if (!strcmp(cmd, "dirty"))
		return dirty(mib);
	if (!strcmp(cmd, "verify"))
		return set_verify(argc > 2 ? argv[2] : "1") ? 2 : 0;
	ensure_debugfs();
	if (!strcmp(cmd, "stats"))
		return read_stats(before, 1) ? 2 : 0;
	if (strcmp(cmd, "check")) {
		fprintf(stderr, "usage: devinit-check [check|dirty|verify|stats] [MiB|0|1]\n");
		return 2;
	}

	if (set_verify("1") || read_stats(before, 0))
		return 2;
	/* Two rounds: the second reuses what the first freed (pcp lists). */
	ubad = 0;
	for (round = 0; round < 2; round++) {
		long b = workload(mib, &scanned);

		if (b < 0)
			return 2;
		ubad += b;
	}
	if (read_stats(after, 1))
		return 2;

#define D(n) (get(after, n) - get(before, n))
	/*
	 * Driver-side checks and lies happen at deflate/report time, usually
	 * before this program runs: count them since boot. Allocation-side
	 * skips are only verified while devinit_verify=1: count this run's.
	 */
	checked = get(after, "verify_checked") + D("alloc_init_skipped") +
		  get(after, "alloc_verify_bad") + scanned;
	bad = get(after, "verify_bad") + get(after, "alloc_verify_bad") + ubad;
	printf("devinit-check: features inflate=%ld reported=%ld fill=%ld\n",
	       get(after, "init_on_inflate"), get(after, "init_reported"),
	       get(after, "fill"));
	printf("devinit-check: workload %zu MiB x2: user_pages=%ld user_bad=%ld alloc_init_skipped=+%ld\n",
	       mib, scanned, ubad, D("alloc_init_skipped"));
	printf("devinit-check: checked=%ld bad=%ld\n", checked, bad);
#undef D
	return bad > 0 ? 1 : 0;
}
