/* balloon-memcheck: guest memory-integrity checker for balloon tests.
 *
 *   balloon-memcheck [-m MiB] [-s SEED] [-r ROUNDS] [-H "host step"]...
 *
 * Maps MiB (default 32) of anonymous memory, fills every 32-bit word with a pattern that depends on the
 * word's index and SEED (so a page that moved to the wrong place, or was zeroed / poisoned, is caught),
 * then ROUNDS times (default 1): asks the host to do each -H step through the harness console protocol
 * ("@@HOST <step>" on stderr, one "@@OK ..." / "@@ERR ..." line back on stdin) and verifies every word.
 * Prints "# ..." diagnostics; exit status 0 = intact, 1 = corrupted, 2 = a host step failed, 3 = usage.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define MAX_STEPS 16

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static inline uint32_t pattern(uint32_t i, uint32_t seed)
{
	uint32_t x = i * 2654435761u ^ seed;
	x ^= x >> 15;
	x *= 0x2c1b3c6du;
	x ^= x >> 12;
	return x;
}

static int host_step(const char *step, char *reply, size_t len)
{
	/* on stderr: still the console when the caller captures stdout */
	fflush(stdout);
	fprintf(stderr, "@@HOST %s\n", step);
	if (!fgets(reply, (int)len, stdin))
		return -1;
	reply[strcspn(reply, "\r\n")] = 0;
	return strncmp(reply, "@@OK", 4) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
	unsigned long mib = 32, rounds = 1;
	uint32_t seed = 0x5eed1234u;
	const char *steps[MAX_STEPS];
	int nsteps = 0, c;

	while ((c = getopt(argc, argv, "m:s:r:H:")) != -1) {
		switch (c) {
		case 'm': mib = strtoul(optarg, NULL, 0); break;
		case 's': seed = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'r': rounds = strtoul(optarg, NULL, 0); break;
		case 'H':
			if (nsteps == MAX_STEPS) { fprintf(stderr, "too many -H\n"); return 3; }
			steps[nsteps++] = optarg;
			break;
		default:
			fprintf(stderr, "usage: balloon-memcheck [-m MiB] [-s SEED] [-r ROUNDS] [-H step]...\n");
			return 3;
		}
	}
	if (!mib) return 3;
	size_t bytes = (size_t)mib << 20, words = bytes / 4;
	uint32_t *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) { perror("# mmap"); return 3; }

	double t0 = now_ms();
	for (size_t i = 0; i < words; i++)
		p[i] = pattern((uint32_t)i, seed);
	printf("# filled %lu MiB in %.1f ms\n", mib, now_ms() - t0);

	char reply[512];
	for (unsigned long r = 1; r <= rounds; r++) {
		for (int s = 0; s < nsteps; s++) {
			if (host_step(steps[s], reply, sizeof reply)) {
				printf("# round %lu: host step '%s' failed: %s\n", r, steps[s], reply);
				return 2;
			}
			printf("# round %lu: %s -> %s\n", r, steps[s], reply + 4);
		}
		t0 = now_ms();
		size_t bad = 0, first = 0;
		for (size_t i = 0; i < words; i++) {
			if (p[i] != pattern((uint32_t)i, seed)) {
				if (!bad++) first = i;
			}
		}
		if (bad) {
			printf("# round %lu: %zu of %zu words corrupted; first at byte offset 0x%zx (page %zu): got 0x%08x want 0x%08x\n",
			       r, bad, words, first * 4, first * 4 / 4096, p[first], pattern((uint32_t)first, seed));
			return 1;
		}
		printf("# round %lu: %lu MiB intact (verified in %.1f ms)\n", r, mib, now_ms() - t0);
		fflush(stdout);
	}
	return 0;
}
