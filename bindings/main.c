/* The braid executable: a lua5.4-compatible stand-alone interpreter with every
 * braid module preloaded, the REPL (repl.c), and thread joining at exit. */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "braid.h"
#include "clock.h"
#include "executor.h"
#include "ldump.h"
#include "repl.h"
#include "thread.h"
#include "trace.h"
#include "lprocess.h"
#include "lstate.h"
#include "waiter.h"

#ifndef BRAID_VERSION
#define BRAID_VERSION "0.0.0"
#endif

#define IGMARK '-' /* "-l mod-v2" sets global "mod" */

static lua_State *globalL = NULL;
static const char *progname = "braid";

/* ---- signals: SIGINT only sets a hook (as lua.c) ---- */

void main_setsignal(int sig, void (*handler)(int))
{
    struct sigaction sa;
    sa.sa_handler = handler;
    sa.sa_flags = 0;
    sigemptyset(&sa.sa_mask);
    sigaction(sig, &sa, NULL);
}

/* Hook set by the signal handler: stops the interpreter at the next event. */
static void lstop(lua_State *L, lua_Debug *ar)
{
    (void)ar;
    lua_sethook(L, NULL, 0, 0);
    braid_waiter_take_interrupt(); /* this error is the interrupt */
    luaL_error(L, "interrupted!");
}

/* A C signal cannot touch a Lua state safely, so it only sets a hook. A second
 * SIGINT before the hook runs terminates the process. */
static void laction(int sig)
{
    int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
    main_setsignal(sig, SIG_DFL);
    lua_sethook(globalL, lstop, flag, 1);
    braid_waiter_interrupt(); /* and out of any braid wait it is blocked in */
}

/* ---- messages ---- */

static const char usage_text[] =
    "usage: %s [options] [script [args]]\n"
    "Available options are:\n"
    "  -e stat   execute string 'stat'\n"
    "  -i        enter interactive mode after executing 'script'\n"
    "  -l mod    require library 'mod' into global 'mod'\n"
    "  -l g=mod  require library 'mod' into global 'g'\n"
    "  -m mod    run library 'mod' as the script: mod.main(args...)\n"
    "  -v        show version information\n"
    "  -E        ignore environment variables\n"
    "  -W        turn warnings on\n"
    "  -h, --help  show this help and exit\n"
    "  --        stop handling options\n"
    "  -         stop handling options and execute stdin\n"
    "  --worker  (internal) run as a process pool's worker\n"
    "  --trace FILE  record a timeline of the run into FILE (Chrome trace JSON;\n"
    "                see docs/tracing.md)\n"
    "  --dump-on-timeout SECONDS  print a live dump (braid.dump) if still running then\n"
    "  --trace-html in.json [-o out.html]  write a trace's HTML view and exit\n"
    "(--trace and --dump-on-timeout come before other options.)\n"
    "With no script, reads a script from stdin, or starts the REPL on a terminal.\n"
    "Environment: LUA_INIT_5_4 / LUA_INIT (run first), LUA_PATH, LUA_CPATH,\n"
    "BRAID_HISTORY (REPL history file; empty: none), BRAID_TRACE (like --trace),\n"
    "BRAID_DUMP_AFTER (seconds, as --dump-on-timeout). SIGQUIT (kill -QUIT) prints\n"
    "a live dump. See braid(1).\n";

static void print_usage(const char *badoption)
{
    lua_writestringerror("%s: ", progname);
    if (badoption[1] == 'e' || badoption[1] == 'l' || badoption[1] == 'm')
        lua_writestringerror("'%s' needs argument\n", badoption);
    else
        lua_writestringerror("unrecognized option '%s'\n", badoption);
    lua_writestringerror(usage_text, progname);
}

/* Prints msg on stderr, prefixed by the program name when pname != NULL. */
static void l_message(const char *pname, const char *msg)
{
    if (pname)
        lua_writestringerror("%s: ", pname);
    lua_writestringerror("%s\n", msg);
}

/* If status is an error, prints and pops the message on top of the stack
 * (a string: msghandler made it one). */
int main_report(lua_State *L, int status)
{
    if (status != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg == NULL)
            msg = "(error object is not a string)";
        l_message(progname, msg);
        lua_pop(L, 1);
    }
    return status;
}

/* The one message handler: turns any error object into a string and appends
 * a traceback (also for objects with __tostring, e.g. braid.Error). */
static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

/* lua_pcall with the message handler and the SIGINT hook. Stack: the
 * function and narg arguments are replaced by nres results or an error string. */
int main_docall(lua_State *L, int narg, int nres)
{
    int status;
    int base = lua_gettop(L) - narg;
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    struct sigaction old; /* the REPL's between lines, else SIG_DFL */
    sigaction(SIGINT, NULL, &old);
    globalL = L;
    main_setsignal(SIGINT, laction);
    status = lua_pcall(L, narg, nres, base);
    sigaction(SIGINT, &old, NULL);
    lua_remove(L, base);
    return status;
}

static void print_version(void)
{
    static const char banner[] =
        "braid " BRAID_VERSION " (Lua " LUA_VERSION_MAJOR "." LUA_VERSION_MINOR ")";
    lua_writestring(banner, sizeof(banner) - 1);
    lua_writeline();
}

/* The global 'arg': argv[script] at index 0, script arguments at positive
 * indices, the interpreter and options at negative ones. With no script,
 * the interpreter's name is at 0. */
static void createargtable(lua_State *L, char **argv, int argc, int script)
{
    int i, narg;
    narg = argc - (script + 1);
    lua_createtable(L, narg > 0 ? narg : 0, script + 1);
    for (i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - script);
    }
    lua_setglobal(L, "arg");
}

static int dochunk(lua_State *L, int status)
{
    if (status == LUA_OK)
        status = main_docall(L, 0, 0);
    return main_report(L, status);
}

static int dofile(lua_State *L, const char *name)
{
    return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name)
{
    return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* -l: globname = require(modname), for "mod", "g=mod" and "mod-suffix". */
static int dolibrary(lua_State *L, char *globname)
{
    int status;
    char *suffix = NULL;
    char *modname = strchr(globname, '=');
    if (modname == NULL) {
        modname = globname;
        suffix = strchr(modname, IGMARK);
    } else {
        *modname = '\0';
        modname++;
    }
    lua_getglobal(L, "require");
    lua_pushstring(L, modname);
    status = main_docall(L, 1, 1);
    if (status == LUA_OK) {
        if (suffix != NULL)
            *suffix = '\0';
        lua_setglobal(L, globname);
    }
    return main_report(L, status);
}

/* Pushes the script arguments arg[1..#arg]; returns how many. */
static int pushargs(lua_State *L)
{
    int i, n;
    if (lua_getglobal(L, "arg") != LUA_TTABLE)
        luaL_error(L, "'arg' is not a table");
    n = (int)luaL_len(L, -1);
    luaL_checkstack(L, n + 3, "too many arguments to script");
    for (i = 1; i <= n; i++)
        lua_rawgeti(L, -i, i);
    lua_remove(L, -i);
    return n;
}

/* Runs argv[0] (or stdin for "-" not preceded by "--") with the script
 * arguments as '...'. luaL_loadfile skips a first '#' line. */
static int handle_script(lua_State *L, char **argv)
{
    int status;
    const char *fname = argv[0];
    if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
        fname = NULL;
    status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
        int n = pushargs(L);
        status = main_docall(L, n, LUA_MULTRET);
    }
    return main_report(L, status);
}

/* -m mod: require(mod).main(args...), the module standing in for a script
 * (braid -m braid.mpi script.lua). */
static int handle_module(lua_State *L, const char *name)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, name);
    int status = main_docall(L, 1, 1);
    if (status == LUA_OK) {
        if (lua_type(L, -1) != LUA_TTABLE || lua_getfield(L, -1, "main") != LUA_TFUNCTION) {
            lua_pushfstring(L, "module '%s' has no main function", name);
            return main_report(L, LUA_ERRRUN);
        }
        int n = pushargs(L);
        status = main_docall(L, n, 0);
    }
    return main_report(L, status);
}

/* ---- options ---- */

#define has_error 1
#define has_i 2
#define has_v 4
#define has_e 8
#define has_E 16
#define has_m 32

/* Scans argv for options needed before running Lua code. *first is the
 * script's index (0 if none), or the bad option's index on error. */
static int collectargs(char **argv, int *first)
{
    int args = 0;
    int i;
    if (argv[0] == NULL) {
        *first = 0;
        return 0;
    }
    if (argv[0][0])
        progname = argv[0];
    for (i = 1; argv[i] != NULL; i++) {
        *first = i;
        if (argv[i][0] != '-')
            return args;
        switch (argv[i][1]) {
        case '-': /* "--" */
            if (argv[i][2] != '\0')
                return has_error;
            *first = argv[i + 1] != NULL ? i + 1 : 0;
            return args;
        case '\0': /* "-": script is stdin */
            return args;
        case 'E':
            if (argv[i][2] != '\0')
                return has_error;
            args |= has_E;
            break;
        case 'W':
            if (argv[i][2] != '\0')
                return has_error;
            break;
        case 'i':
            args |= has_i; /* -i implies -v */
            /* fallthrough */
        case 'v':
            if (argv[i][2] != '\0')
                return has_error;
            args |= has_v;
            break;
        case 'm': /* "-m mod args...": mod is the script */
            if (argv[i][2] == '\0' && (argv[++i] == NULL || argv[i][0] == '-'))
                return has_error;
            *first = i;
            return args | has_m;
        case 'e':
            args |= has_e;
            /* fallthrough */
        case 'l':
            if (argv[i][2] == '\0') {
                i++;
                if (argv[i] == NULL || argv[i][0] == '-')
                    return has_error;
            }
            break;
        default:
            return has_error;
        }
    }
    *first = 0;
    return args;
}

/* Runs -e, -l and -W in order; returns 0 if some code raised an error. */
static int runargs(lua_State *L, char **argv, int n)
{
    int i;
    for (i = 1; i < n; i++) {
        int option = argv[i][1];
        switch (option) {
        case 'e':
        case 'l': {
            int status;
            char *extra = argv[i] + 2;
            if (*extra == '\0')
                extra = argv[++i];
            status = option == 'e' ? dostring(L, extra, "=(command line)") : dolibrary(L, extra);
            if (status != LUA_OK)
                return 0;
            break;
        }
        case 'W':
            lua_warning(L, "@on", 0);
            break;
        default:
            break;
        }
    }
    return 1;
}

/* LUA_INIT_5_4 or LUA_INIT: "@file" runs a file, anything else a string. */
static int handle_luainit(lua_State *L)
{
    const char *name = "=LUA_INIT_" LUA_VERSION_MAJOR "_" LUA_VERSION_MINOR;
    const char *init = getenv(name + 1);
    if (init == NULL) {
        name = "=LUA_INIT";
        init = getenv(name + 1);
    }
    if (init == NULL)
        return LUA_OK;
    if (init[0] == '@')
        return dofile(L, init + 1);
    return dostring(L, init, name);
}

/* The program's end, like Python's: every executor finishes its queued
 * work, then every non-daemon thread is joined. The whole process, not
 * just this thread's group (braid_shutdown): a thread started from a
 * foreign OS thread (a libuv worker, say) is waited for too. */
static void shutdown_process(void)
{
    braid_executor_shutdown_all(BRAID_FOREVER);
    braid_thread_join_nondaemon(BRAID_FOREVER);
}

/* os.exit in the main state: like Python's sys.exit, wait for non-daemon
 * threads first, then call the standard os.exit (upvalue 1). */
static int l_os_exit(lua_State *L)
{
    shutdown_process();
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 0);
    return 0;
}

static void wrap_os_exit(lua_State *L)
{
    if (lua_getglobal(L, "os") == LUA_TTABLE) {
        lua_getfield(L, -1, "exit");
        lua_pushcclosure(L, l_os_exit, 1);
        lua_setfield(L, -2, "exit");
    }
    lua_pop(L, 1);
}

/* The whole interpreter, run protected. Arguments: argc, argv. Returns true
 * when everything ran without error. */
static int pmain(lua_State *L)
{
    int argc = (int)lua_tointeger(L, 1);
    char **argv = (char **)lua_touserdata(L, 2);
    int script;
    int args = collectargs(argv, &script);
    int optlim = script > 0 ? script : argc;
    luaL_checkversion(L);
    if (args == has_error) {
        print_usage(argv[script]);
        return 0;
    }
    if (args & has_v)
        print_version();
    if (args & has_E) {
        lua_pushboolean(L, 1);
        lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
    }
    luaL_openlibs(L);
    braid_openlibs(L);
    braid_waiter_t *w = braid_waiter_current();
    if (w)
        w->interruptible = 1; /* Ctrl-C also ends a braid wait (laction) */
    lua_settop(L, 2);
    wrap_os_exit(L);
    createargtable(L, argv, argc, script);
    lua_gc(L, LUA_GCRESTART);
    lua_gc(L, LUA_GCGEN, 0, 0);
    if (!(args & has_E) && handle_luainit(L) != LUA_OK)
        return 0;
    if (!runargs(L, argv, optlim))
        return 0;
    if (args & has_m) {
        const char *mod = argv[script][0] == '-' ? argv[script] + 2 : argv[script];
        lua_getglobal(L, "arg");
        lua_pushstring(L, mod); /* arg[0]: the module, also for "-mmod" */
        lua_rawseti(L, -2, 0);
        lua_pop(L, 1);
        if (handle_module(L, mod) != LUA_OK)
            return 0;
    } else if (script > 0 && handle_script(L, argv + script) != LUA_OK) {
        return 0;
    }
    if (args & has_i) {
        repl_run(L, &progname);
    } else if (script < 1 && !(args & (has_e | has_v))) {
        if (isatty(STDIN_FILENO)) {
            print_version();
            repl_run(L, &progname);
        } else if (dofile(L, NULL) != LUA_OK) {
            return 0;
        }
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* Spawned processes run this executable (found as started, so that
 * under valgrind too the child is braid). */
static void set_worker_exe(const char *argv0)
{
    static char path[4096];
    if (argv0 && strchr(argv0, '/') && realpath(argv0, path)) {
        lbraid_worker_exe = path;
        return;
    }
    ssize_t n = readlink("/proc/self/exe", path, sizeof path - 1);
    if (n > 0) {
        path[n] = '\0';
        lbraid_worker_exe = path;
    }
}

/* "--trace FILE" (or --trace=FILE) as a leading option: starts the
 * timeline and removes the option from argv. -1 on error, 1 when taken,
 * 0 if absent. */
static int take_trace_option(int *argc, char **argv)
{
    if (*argc < 2 || strncmp(argv[1], "--trace", 7) != 0 ||
        (argv[1][7] != '\0' && argv[1][7] != '='))
        return 0;
    int used = argv[1][7] == '=' ? 1 : 2;
    const char *path = used == 1 ? argv[1] + 8 : argv[2];
    if (!path || !*path) {
        l_message(argv[0], "--trace needs a file name");
        return -1;
    }
    const char *script = *argc > used + 1 ? argv[used + 1] : "stdin";
    char name[512];
    snprintf(name, sizeof name, "braid %s", script);
    if (braid_trace_start(path, name) != 0) {
        l_message(argv[0], "cannot open the trace file");
        return -1;
    }
    for (int i = 1; i + used <= *argc; i++)
        argv[i] = argv[i + used];
    *argc -= used;
    return 1;
}

/* --dump-on-timeout SECONDS: -1 on a bad value, 1 when taken, 0 if absent */
static int take_dump_option(int *argc, char **argv)
{
    if (*argc < 2 || strcmp(argv[1], "--dump-on-timeout") != 0)
        return 0;
    char *end = NULL;
    double secs = *argc > 2 ? strtod(argv[2], &end) : -1;
    if (!end || *end || end == argv[2] || !(secs >= 0)) {
        l_message(argv[0], "--dump-on-timeout needs a number of seconds");
        return -1;
    }
    lbraid_dump_after(secs);
    for (int i = 1; i + 2 <= *argc; i++)
        argv[i] = argv[i + 2];
    *argc -= 2;
    return 1;
}

int main(int argc, char **argv)
{
    int status, result;
    lua_State *L;
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf(usage_text, argv[0]);
        return EXIT_SUCCESS;
    }
    if (argc > 1 && strcmp(argv[1], "--worker") == 0)
        return lbraid_worker_main(argc, argv);
    for (int r; (r = take_trace_option(&argc, argv) | take_dump_option(&argc, argv)) != 0;)
        if (r < 0)
            return EXIT_FAILURE;
    lbraid_dump_install_sigquit();
    set_worker_exe(argv[0]);
    char *html_argv[argc + 2]; /* --trace-html IN [-o OUT]: -m braid.trace_html IN ... */
    if (argc > 1 && strcmp(argv[1], "--trace-html") == 0) {
        html_argv[0] = argv[0];
        html_argv[1] = "-m";
        html_argv[2] = "braid.trace_html";
        memcpy(html_argv + 3, argv + 2, (size_t)(argc - 1) * sizeof *argv); /* with the NULL */
        argv = html_argv;
        argc++;
    }
    L = lbraid_newstate_main();
    if (L == NULL) {
        l_message(argv[0], "cannot create state: not enough memory");
        return EXIT_FAILURE;
    }
    lua_gc(L, LUA_GCSTOP);
    lua_pushcfunction(L, pmain);
    lua_pushinteger(L, argc);
    lua_pushlightuserdata(L, argv);
    status = lua_pcall(L, 2, 1, 0);
    result = lua_toboolean(L, -1);
    main_report(L, status);
    /* Python semantics: non-daemon threads run to completion even after an
     * error in the main script; the exit status still reports the error. */
    shutdown_process();
    lbraid_closestate_main(L);
    return (result && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
