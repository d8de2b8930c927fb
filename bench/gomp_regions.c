/* Where threads wait: an LD_PRELOAD library around libgomp's GOMP_parallel (every `omp parallel`,
 * hence every at::parallel_for of libtorch and the kernels) that times each region, and in it each
 * thread's part, and at exit prints one line per region (the function the region runs) to stderr:
 *
 *   LD_PRELOAD=build/bench/libgomp_regions.so build/bench/bench_md_step --threads 2 --md-only
 *
 * Per region: calls, wall time, the mean of the threads' parts, the spread of the parts' ends (how
 * long the first thread to finish waited for the last), the rest (wall time past the longest
 * part: starting the threads and joining them) and the time before it since the previous region
 * ended (work on one thread between regions, which caps what more threads can gain; regions
 * started from one thread, as libtorch's are).
 *
 * GOMP_REGIONS_THREADS=N runs every region on N threads whatever its caller asked: with N = 1 the
 * same regions, split as their callers split them, show their cost without a second thread
 * beside them (OpenBLAS's regions keep their count: they wait for every thread they asked for).
 *
 * Functions in anonymous namespaces have no dynamic symbol: their line names the library and the
 * offset, for `addr2line -f -C -e LIB OFFSET`.
 * Warm-up calls count too: run enough evaluations that they do not matter. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { kMaxThreads = 64, kMaxRegions = 1024 };

typedef void (*RegionFn)(void*);

typedef struct {
  RegionFn fn;
  long calls;
  double wall, parts, end_spread, rest, before; /* seconds, summed over the calls */
} Region;

typedef struct {
  RegionFn fn;
  void* data;
  double start[kMaxThreads], end[kMaxThreads];
} Call;

static Region regions[kMaxRegions];
static int num_regions;
static long dropped_calls; /* of regions past kMaxRegions */
static pthread_mutex_t regions_mutex = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void timed_part(void* arg) {
  Call* call = arg;
  const int thread = omp_get_thread_num();
  const double start = now();
  call->fn(call->data);
  if (thread < kMaxThreads) {
    call->start[thread] = start;
    call->end[thread] = now();
  }
}

static void record(const Call* call, int threads, double wall, double before) {
  double parts = 0, longest = 0, first_end = 0, last_end = 0;
  for (int t = 0; t < threads; ++t) {
    const double part = call->end[t] - call->start[t];
    parts += part;
    if (part > longest) longest = part;
    if (t == 0 || call->end[t] < first_end) first_end = call->end[t];
    if (t == 0 || call->end[t] > last_end) last_end = call->end[t];
  }
  pthread_mutex_lock(&regions_mutex);
  int k = 0;
  while (k < num_regions && regions[k].fn != call->fn) ++k;
  if (k == num_regions && num_regions < kMaxRegions) regions[num_regions++].fn = call->fn;
  if (k < num_regions) {
    Region* r = &regions[k];
    r->calls += 1;
    r->wall += wall;
    r->parts += parts / threads;
    r->end_spread += last_end - first_end;
    r->rest += wall - longest;
    r->before += before;
  } else {
    ++dropped_calls;
  }
  pthread_mutex_unlock(&regions_mutex);
}

/* OpenBLAS's regions wait for every thread they asked for: they keep their count. */
static unsigned threads_to_run(RegionFn fn, unsigned asked) {
  enum { kMaxKnown = 64 };
  static int forced = -1;
  static struct Known {
    RegionFn fn;
    int keeps_count;
  } known[kMaxKnown];
  static int num_known;
  if (forced < 0) {
    const char* value = getenv("GOMP_REGIONS_THREADS");
    forced = value ? atoi(value) : 0;
  }
  if (forced <= 0) return asked;
  int k = 0;
  while (k < num_known && known[k].fn != fn) ++k;
  int keeps_count;
  if (k < num_known) {
    keeps_count = known[k].keeps_count;
  } else {
    Dl_info info;
    keeps_count = dladdr((void*)fn, &info) && info.dli_fname && strstr(info.dli_fname, "openblas");
    if (num_known < kMaxKnown) known[num_known++] = (struct Known){fn, keeps_count};
  }
  return keeps_count ? asked : (unsigned)forced;
}

void GOMP_parallel(RegionFn fn, void* data, unsigned num_threads, unsigned flags) {
  static void (*real)(RegionFn, void*, unsigned, unsigned);
  if (!real) real = (void (*)(RegionFn, void*, unsigned, unsigned))dlsym(RTLD_NEXT, "GOMP_parallel");
  static double last_end; /* of the previous region, on the thread that starts regions */
  Call call = {fn, data, {0}, {0}};
  int threads = 0;
  const double start = now();
  const double before = last_end > 0 ? start - last_end : 0;
  real(timed_part, &call, threads_to_run(fn, num_threads), flags);
  const double end = now();
  for (int t = 0; t < kMaxThreads && call.end[t] > 0; ++t) threads = t + 1;
  if (threads > 0) record(&call, threads, end - start, before);
  last_end = end;
}

static int by_wall(const void* a, const void* b) {
  const double x = ((const Region*)a)->wall, y = ((const Region*)b)->wall;
  return (x < y) - (x > y);
}

__attribute__((destructor)) static void report(void) {
  qsort(regions, (size_t)num_regions, sizeof(Region), by_wall);
  long calls = 0;
  double wall = 0, spread = 0, rest = 0, before = 0;
  for (int k = 0; k < num_regions; ++k) {
    calls += regions[k].calls;
    wall += regions[k].wall;
    spread += regions[k].end_spread;
    rest += regions[k].rest;
    before += regions[k].before;
  }
  fprintf(stderr, "GOMP_parallel regions: %ld calls, %.3f s inside, ends spread over %.1f %% of it, %.2f us per call"
                  " past the longest part; %.3f s between them\n",
          calls, wall, wall > 0 ? 100 * spread / wall : 0.0, calls > 0 ? 1e6 * rest / (double)calls : 0.0, before);
  if (dropped_calls > 0)
    fprintf(stderr, "  (%ld calls of regions past the first %d not counted)\n", dropped_calls, kMaxRegions);
  fprintf(stderr, "  %8s %10s %10s %10s %10s %10s  %s\n", "calls", "wall ms", "part ms", "spread ms", "rest us",
          "before ms", "region");
  for (int k = 0; k < num_regions; ++k) {
    const Region* r = &regions[k];
    Dl_info info;
    char where[512];
    const int found = dladdr((void*)r->fn, &info);
    if (found && info.dli_sname)
      snprintf(where, sizeof where, "%s", info.dli_sname);
    else if (found && info.dli_fname)
      snprintf(where, sizeof where, "%s 0x%lx", info.dli_fname,
               (unsigned long)((const char*)(void*)r->fn - (const char*)info.dli_fbase));
    else
      snprintf(where, sizeof where, "%p", (void*)r->fn);
    fprintf(stderr, "  %8ld %10.3f %10.3f %10.3f %10.2f %10.3f  %s\n", r->calls, 1e3 * r->wall, 1e3 * r->parts,
            1e3 * r->end_spread, 1e6 * r->rest / (double)r->calls, 1e3 * r->before, where);
  }
}
