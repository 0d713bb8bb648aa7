/*
 * The `spiderpool` launcher of a bundle build (scripts/build.sh without a denort base binary): runs the bundled
 * program with the Deno runtime that travels with it, keeping argv[0] (the CNI plugin name the runtime started
 * us under) and every argument. A CNI plugin is a new process per pod and per call, so this is one execve with
 * no shell and no helper process in between: it costs a fraction of a millisecond of CPU.
 *
 * Layout, relative to the real path of this file (symlinks resolved through /proc/self/exe):
 *   spiderpool          this launcher
 *   lib/deno            the runtime
 *   lib/main.js         the program (chooses the mode by argv[0], then by subcommand)
 *   lib/cni/NAME.js     the CNI plugin NAME alone, in one file: what a CNI call (CNI_COMMAND set) under that
 *                       name runs instead of main.js, which would load a dozen shared chunks first
 *   cache/cni, cache/run  the runtime's module caches (DENO_DIR: dependency analysis, V8 code cache) of CNI calls
 *                       and of every other mode. Warm, they save a plugin call about 15 ms of CPU; `spiderpool
 *                       install` and the build warm them. Where they are not writable the runtime silently keeps
 *                       them in memory.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* V8 flags chosen in scripts/build.sh: RUNTIME_V8_FLAGS for every mode, CNI_V8_FLAGS added for a CNI call. They
 * are given as DENO_V8_FLAGS unless the environment sets that already, so an operator can replace them. */
#if !defined(RUNTIME_V8_FLAGS) || !defined(CNI_V8_FLAGS)
#error "build with -DRUNTIME_V8_FLAGS='\"...\"' -DCNI_V8_FLAGS='\"...\"' (scripts/build.sh does)"
#endif

/*
 * Runtime flags: every mode needs -A (FFI, /proc, netns files); the bundle carries no config or lock file, and
 * imports only its own files and node: built-ins (the build inlines every package), so the runtime sets up no npm
 * resolver and no remote loader: ≈ 1 ms less CPU for every start (tests/bench/plugin.ts).
 */
static const char *const FLAGS[] = {"run", "-A", "--no-config", "--no-lock", "--no-npm", "--no-remote"};
#define NFLAGS (sizeof FLAGS / sizeof FLAGS[0])

static int fail(const char *what, const char *path) {
  fprintf(stderr, "spiderpool: %s %s: %s; reinstall the build (spiderpool install, or scripts/build.sh)\n", what,
          path, strerror(errno));
  return 127;
}

int main(int argc, char **argv) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0) {
    /* No /proc: resolve the name we were started under instead. */
    if (argc < 1 || realpath(argv[0], self) == NULL) return fail("cannot find the build of", "/proc/self/exe");
    n = (ssize_t)strlen(self);
  }
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (slash == NULL) return fail("cannot find the build of", self);
  *slash = '\0';

  /*
   * A CNI call (the container runtime sets CNI_COMMAND) lives a few milliseconds: V8 compiles every function of
   * the modules it loads at once, so that the code cache holds the whole call and no call compiles anything. The
   * agent must not (it would compile all of its libraries), and V8 rejects code cached under other flags, so CNI
   * calls keep their own cache.
   */
  int cni = getenv("CNI_COMMAND") != NULL;
  char runtime[PATH_MAX], program[PATH_MAX], cache[PATH_MAX], v8flags[1024];
  if (snprintf(runtime, sizeof runtime, "%s/lib/deno", self) >= (int)sizeof runtime ||
      snprintf(program, sizeof program, "%s/lib/main.js", self) >= (int)sizeof program ||
      snprintf(cache, sizeof cache, "%s/cache/%s", self, cni ? "cni" : "run") >= (int)sizeof cache) {
    errno = ENAMETOOLONG;
    return fail("cannot run the build in", self);
  }
  /* A CNI call under a plugin's name runs that plugin's own program when the build has one (main.js would
   * dispatch to the same plugin by the same two facts: CNI_COMMAND set, and the name). */
  if (cni && argc > 0) {
    const char *name = strrchr(argv[0], '/');
    name = name ? name + 1 : argv[0];
    char plugin[PATH_MAX];
    if (name[0] != '\0' && strspn(name, "abcdefghijklmnopqrstuvwxyz-") == strlen(name) &&
        snprintf(plugin, sizeof plugin, "%s/lib/cni/%s.js", self, name) < (int)sizeof plugin &&
        access(plugin, R_OK) == 0) {
      memcpy(program, plugin, strlen(plugin) + 1);
    }
  }
  const char *extra = cni ? CNI_V8_FLAGS : "";
  snprintf(v8flags, sizeof v8flags, "%s%s%s", RUNTIME_V8_FLAGS, *RUNTIME_V8_FLAGS && *extra ? "," : "", extra);

  /* The build's own caches, whatever the caller's environment (a CNI runtime passes its own, often no HOME). */
  setenv("DENO_DIR", cache, 1);
  /* The runtime must never look for its own updates (a network fetch from every node). */
  setenv("DENO_NO_UPDATE_CHECK", "1", 1);
  if (*v8flags) setenv("DENO_V8_FLAGS", v8flags, 0);

  char **args = calloc((size_t)argc + NFLAGS + 2, sizeof *args);
  if (args == NULL) return fail("out of memory starting", runtime);
  size_t i = 0;
  args[i++] = argc > 0 ? argv[0] : "spiderpool";
  for (size_t f = 0; f < NFLAGS; f++) args[i++] = (char *)FLAGS[f];
  args[i++] = program;
  for (int a = 1; a < argc; a++) args[i++] = argv[a];
  args[i] = NULL;
  execv(runtime, args);
  return fail("cannot run", runtime);
}
