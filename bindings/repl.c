/* The braid REPL: libedit line editing and history, braid's modules bound as
 * globals, other threads' output printed above the prompt, tab completion. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

#include <dlfcn.h>
#include <editline/readline.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "fdio.h"
#include "repl.h"

#define PROMPT1 "> "
#define PROMPT2 ">> "
#define EOFMARK "<eof>"
#define MARKLEN (sizeof(EOFMARK) - 1)

/* ---- libedit, opened when the REPL starts on a terminal ----
 * Not linked: every braid process (each spawned multiprocessing child)
 * would map and relocate it and its three libraries at start, ~0.5 M
 * instructions, for a REPL it never runs. */
#define EDIT_SYMBOLS(X)                                                                            \
    X(readline)                                                                                    \
    X(add_history)                                                                                 \
    X(read_history)                                                                                \
    X(write_history)                                                                               \
    X(using_history)                                                                               \
    X(stifle_history)                                                                              \
    X(rl_completion_matches)                                                                       \
    X(rl_forced_update_display)                                                                    \
    X(rl_attempted_completion_function)                                                            \
    X(rl_attempted_completion_over)                                                                \
    X(rl_catch_signals)                                                                            \
    X(rl_completer_word_break_characters)                                                          \
    X(rl_completion_append_character)                                                              \
    X(rl_getc_function)                                                                            \
    X(rl_outstream)

static struct {
#define EDIT_FIELD(s) __typeof__(s) *s;
    EDIT_SYMBOLS(EDIT_FIELD)
#undef EDIT_FIELD
} edit;

/* Whether libedit is there (opened once; every symbol found). */
static int edit_open(void)
{
    static int state; /* 0: not tried, 1: open, -1: missing */
    if (state)
        return state > 0;
    void *h = dlopen("libedit.so.2", RTLD_NOW | RTLD_LOCAL);
    if (!h)
        h = dlopen("libedit.so", RTLD_NOW | RTLD_LOCAL);
    state = h ? 1 : -1;
#define EDIT_SYM(s)                                                                                \
    if (h && !(edit.s = (__typeof__(edit.s))dlsym(h, #s)))                                         \
        state = -1;
    EDIT_SYMBOLS(EDIT_SYM)
#undef EDIT_SYM
    if (state < 0)
        fprintf(stderr, "braid: libedit not found: no line editing or history\n");
    return state > 0;
}

#define readline (*edit.readline)
#define add_history (*edit.add_history)
#define read_history (*edit.read_history)
#define write_history (*edit.write_history)
#define using_history (*edit.using_history)
#define stifle_history (*edit.stifle_history)
#define rl_completion_matches (*edit.rl_completion_matches)
#define rl_forced_update_display (*edit.rl_forced_update_display)
#define rl_attempted_completion_function (*edit.rl_attempted_completion_function)
#define rl_attempted_completion_over (*edit.rl_attempted_completion_over)
#define rl_catch_signals (*edit.rl_catch_signals)
#define rl_completer_word_break_characters (*edit.rl_completer_word_break_characters)
#define rl_completion_append_character (*edit.rl_completion_append_character)
#define rl_getc_function (*edit.rl_getc_function)
#define rl_outstream (*edit.rl_outstream)

static lua_State *replL;
static char *history_path = NULL; /* NULL: no persistent history */
static int use_readline = 0;

/* ---- history ---- */

/* History file: $BRAID_HISTORY ("" disables), else ~/.braid_history. */
static void history_open(void)
{
    const char *env = getenv("BRAID_HISTORY");
    const char *home = getenv("HOME");
    free(history_path);
    history_path = NULL;
    if (env != NULL) {
        if (env[0] != '\0')
            history_path = strdup(env);
    } else if (home != NULL && home[0] != '\0') {
        size_t n = strlen(home) + sizeof("/.braid_history");
        history_path = malloc(n);
        if (history_path)
            snprintf(history_path, n, "%s/.braid_history", home);
    }
    using_history();
    stifle_history(1000);
    if (history_path)
        read_history(history_path);
}

/* Adds a line to the history and rewrites the file at once, so history
 * survives os.exit and crashes. */
static void saveline(const char *line)
{
    if (!use_readline || line[0] == '\0')
        return;
    add_history(line);
    if (history_path)
        write_history(history_path);
}

/* ---- other threads' output while the prompt is up ----
 * While libedit waits for a key, fds 1 and 2 point into a pipe; libedit
 * itself writes to the terminal (tty_fd). Whatever other threads write in
 * the meantime is read by rl_getc_function below, which clears the prompt
 * line, writes it, and has libedit redraw the prompt and the line being
 * edited. Only this thread touches libedit. */

static int tty_fd = -1, tty_err = -1; /* the terminal's stdout and stderr */
static int out_pipe[2] = {-1, -1};    /* [0] non-blocking */
/* Keys are read from a non-blocking description of the terminal of our own:
 * a Ctrl-C flushes the tty's input queue, and one landing between pselect
 * and a blocking read() of the byte it reported would leave the REPL stuck
 * in read() with its interrupt flag set. */
static int key_fd = -1;
static FILE *tty_stream;

/* Copies what is in the pipe to the terminal; with redraw, above the line
 * being edited. Returns whether anything was copied. */
static int relay(int redraw)
{
    char buf[4096];
    ssize_t n;
    int any = 0;
    while ((n = read(out_pipe[0], buf, sizeof buf)) > 0) {
        if (!any && redraw)
            braid_write_all(tty_fd, "\r\x1b[K", 4); /* to column 0, clear the line */
        any = 1;
        braid_write_all(tty_fd, buf, (size_t)n);
    }
    if (any && redraw)
        rl_forced_update_display();
    return any;
}

static int capture_open(void)
{
    if (pipe(out_pipe) != 0)
        return 0;
    fcntl(out_pipe[0], F_SETFL, fcntl(out_pipe[0], F_GETFL) | O_NONBLOCK);
    fcntl(out_pipe[0], F_SETFD, FD_CLOEXEC);
    fcntl(out_pipe[1], F_SETFD, FD_CLOEXEC);
    tty_fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    tty_err = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
    tty_stream = tty_fd >= 0 ? fdopen(dup(tty_fd), "w") : NULL;
    if (tty_fd < 0 || tty_err < 0 || !tty_stream) {
        close(out_pipe[0]);
        close(out_pipe[1]);
        out_pipe[0] = out_pipe[1] = -1;
        return 0;
    }
    setvbuf(tty_stream, NULL, _IONBF, 0);
    rl_outstream = tty_stream;
    return 1;
}

/* Around readline: other threads' output goes into the pipe. The order in
 * capture_end matters: a writer blocked on a full pipe may hold stdout's
 * lock, so fds are switched back and the pipe drained before any fflush. */
static void capture_begin(void)
{
    if (out_pipe[0] < 0)
        return;
    fflush(stdout);
    fflush(stderr);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(out_pipe[1], STDERR_FILENO);
}

static void capture_end(void)
{
    if (out_pipe[0] < 0)
        return;
    dup2(tty_fd, STDOUT_FILENO);
    dup2(tty_err, STDERR_FILENO);
    relay(0);
}

static void capture_close(void)
{
    if (out_pipe[0] < 0)
        return;
    capture_end();
    close(out_pipe[0]);
    close(out_pipe[1]);
    close(tty_fd);
    close(tty_err);
    out_pipe[0] = out_pipe[1] = tty_fd = tty_err = -1;
}

static volatile sig_atomic_t prompt_interrupted = 0;
static int line_interrupted; /* repl_getc ended the line for a Ctrl-C */

/* SIGINT in the REPL outside a running line (main_docall has its own):
 * while reading a line it ends the wait for a key; between lines it is
 * dropped rather than killing the REPL. */
static void prompt_action(int sig)
{
    (void)sig;
    prompt_interrupted = 1;
}

/* asyncio at the prompt: runs a pass of the REPL's event loop (tasks
 * started on earlier lines); returns how long to wait for a key before the
 * next pass, or -1 when there is nothing to run. */
static double asyncio_idle(void)
{
    lua_State *L = replL;
    if (!L)
        return -1;
    int top = lua_gettop(L);
    double wait = -1;
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, "braid.asyncio") == LUA_TTABLE &&
        lua_getfield(L, -1, "__repl_idle") == LUA_TFUNCTION && lua_pcall(L, 0, 1, 0) == LUA_OK &&
        lua_isnumber(L, -1))
        wait = lua_tonumber(L, -1);
    lua_settop(L, top);
    return wait;
}

/* libedit's source of keys: waits for one while relaying other threads'
 * output and running asyncio tasks. Ctrl-C ends the line (Enter), flagged
 * as interrupted. */
static int repl_getc(FILE *in)
{
    int fd = fileno(in);
    for (;;) {
        double wait = asyncio_idle();
        /* SIGINT stays blocked from the flag's check until pselect waits, so
         * a Ctrl-C in between cannot be missed */
        sigset_t block, orig;
        sigemptyset(&block);
        sigaddset(&block, SIGINT);
        sigprocmask(SIG_BLOCK, &block, &orig);
        if (prompt_interrupted) {
            sigprocmask(SIG_SETMASK, &orig, NULL);
            line_interrupted = 1;
            return '\n';
        }
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(fd, &rd);
        int maxfd = fd;
        if (out_pipe[0] >= 0) {
            FD_SET(out_pipe[0], &rd);
            if (out_pipe[0] > maxfd)
                maxfd = out_pipe[0];
        }
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        int n = pselect(maxfd + 1, &rd, NULL, NULL, wait >= 0 ? &ts : NULL, &orig);
        sigprocmask(SIG_SETMASK, &orig, NULL);
        if (n == 0)
            continue;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return EOF;
        }
        if (out_pipe[0] >= 0 && FD_ISSET(out_pipe[0], &rd))
            relay(1);
        if (FD_ISSET(fd, &rd)) {
            unsigned char c;
            ssize_t r = read(key_fd >= 0 && fd == STDIN_FILENO ? key_fd : fd, &c, 1);
            if (r == 1)
                return c;
            if (r == 0 || (r < 0 && errno != EINTR && errno != EAGAIN))
                return EOF;
        }
    }
}

/* ---- tab completion: globals, and fields after '.' or ':' ---- */

static char **candidates;
static size_t ncandidates;

static void candidates_free(void)
{
    for (size_t i = 0; i < ncandidates; i++)
        free(candidates[i]);
    free(candidates);
    candidates = NULL;
    ncandidates = 0;
}

/* Adds prefix..key for every string key of the table at the top that
 * starts with part (keys starting with '_' only when part does). */
static void add_keys(lua_State *L, const char *prefix, size_t plen, const char *part)
{
    size_t partlen = strlen(part);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            size_t klen;
            const char *k = lua_tolstring(L, -2, &klen);
            int hidden = k[0] == '_' && part[0] != '_'; /* private unless asked */
            if (!hidden && klen >= partlen && strncmp(k, part, partlen) == 0 && klen == strlen(k)) {
                char **grown = realloc(candidates, (ncandidates + 1) * sizeof *candidates);
                char *c = malloc(plen + klen + 1);
                if (grown)
                    candidates = grown;
                if (grown && c) {
                    memcpy(c, prefix, plen);
                    memcpy(c + plen, k, klen + 1);
                    candidates[ncandidates++] = c;
                } else {
                    free(c);
                }
            }
        }
        lua_pop(L, 1);
    }
}

/* Pushes the value the expression path[0..len) names ("a.b.c"): globals
 * through _G (so a lazily bound module loads), fields through gettable.
 * Pushes nil on any failure. */
static int push_path(lua_State *L)
{
    size_t len;
    const char *path = lua_tolstring(L, 1, &len);
    lua_pushglobaltable(L);
    const char *p = path, *end = path + len;
    while (p < end) {
        const char *dot = p;
        while (dot < end && *dot != '.' && *dot != ':')
            dot++;
        if (!lua_istable(L, -1) && !luaL_getmetafield(L, -1, "__index"))
            return 0;
        lua_pushlstring(L, p, (size_t)(dot - p));
        lua_gettable(L, -2);
        p = dot + 1;
    }
    return 1;
}

static void collect(lua_State *L, const char *text)
{
    const char *sep = strrchr(text, '.');
    const char *colon = strrchr(text, ':');
    if (colon && (!sep || colon > sep))
        sep = colon;
    int top = lua_gettop(L);
    if (!sep) {
        lua_pushglobaltable(L);
        add_keys(L, "", 0, text);
        if (lua_getmetatable(L, -1) && lua_getfield(L, -1, "__braid_lazy") == LUA_TTABLE)
            add_keys(L, "", 0, text); /* the modules not bound yet */
        lua_settop(L, top);
        return;
    }
    size_t plen = (size_t)(sep - text) + 1;
    lua_pushcfunction(L, push_path);
    lua_pushlstring(L, text, plen - 1);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
        if (lua_istable(L, -1))
            add_keys(L, text, plen, sep + 1);
        /* methods of objects and of tables with an __index table */
        if (luaL_getmetafield(L, -1, "__index") != LUA_TNIL) {
            if (lua_istable(L, -1))
                add_keys(L, text, plen, sep + 1);
            lua_pop(L, 1);
        }
    }
    lua_settop(L, top);
}

static char *complete_next(const char *text, int state)
{
    static size_t next;
    if (state == 0) {
        candidates_free();
        collect(replL, text);
        next = 0;
    }
    return next < ncandidates ? strdup(candidates[next++]) : NULL;
}

static char **complete(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    return rl_completion_matches(text, complete_next);
}

/* ---- reading lines ---- */

#define LINE_EOF 0
#define LINE_OK 1
#define LINE_INTERRUPTED 2

/* Reads one line after showing prompt into *line (malloc'ed, without its
 * newline). Returns LINE_OK, LINE_EOF, or LINE_INTERRUPTED on Ctrl-C. */
static int readline_prompt(const char *prompt, char **line)
{
    char *buf = NULL;
    size_t cap = 0;
    ssize_t l;
    if (use_readline) {
        prompt_interrupted = line_interrupted = 0;
        capture_begin();
        *line = readline(prompt);
        capture_end();
        if (line_interrupted) { /* a Ctrl-C after Enter is ignored */
            free(*line);
            *line = NULL;
            lua_writestring("^C", 2);
            lua_writeline();
            return LINE_INTERRUPTED;
        }
        return *line != NULL ? LINE_OK : LINE_EOF;
    }
    fputs(prompt, stdout);
    fflush(stdout);
    l = getline(&buf, &cap, stdin);
    if (l < 0) {
        free(buf);
        return LINE_EOF;
    }
    if (l > 0 && buf[l - 1] == '\n')
        buf[--l] = '\0';
    *line = buf;
    return LINE_OK;
}

static const char *get_prompt(lua_State *L, int firstline)
{
    const char *p;
    lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2");
    p = lua_tostring(L, -1);
    if (p == NULL)
        p = firstline ? PROMPT1 : PROMPT2;
    return p;
}

/* True (and pops the message) if status is a syntax error at <eof>. */
static int incomplete(lua_State *L, int status)
{
    if (status == LUA_ERRSYNTAX) {
        size_t lmsg;
        const char *msg = lua_tolstring(L, -1, &lmsg);
        if (lmsg >= MARKLEN && strcmp(msg + lmsg - MARKLEN, EOFMARK) == 0) {
            lua_pop(L, 1);
            return 1;
        }
    }
    return 0;
}

/* Prompts, reads a line and pushes it; returns LINE_EOF (nothing pushed),
 * LINE_OK, or LINE_INTERRUPTED (pushes ""). */
static int pushline(lua_State *L, int firstline)
{
    const char *prmt = get_prompt(L, firstline);
    char *b = NULL;
    int r = readline_prompt(prmt, &b);
    lua_pop(L, 1); /* prompt */
    if (r == LINE_EOF)
        return LINE_EOF;
    if (r == LINE_INTERRUPTED)
        lua_pushliteral(L, "");
    else if (firstline && b[0] == '=') /* 5.2 compatibility: "=x" is "return x" */
        lua_pushfstring(L, "return %s", b + 1);
    else
        lua_pushstring(L, b);
    free(b);
    return r;
}

/* Tries to compile the line on the stack as 'return <line>;'. On return the
 * stack has the compiled chunk, or the original line if that failed. */
static int addreturn(lua_State *L)
{
    const char *line = lua_tostring(L, -1);
    const char *retline = lua_pushfstring(L, "return %s;", line);
    int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
    if (status == LUA_OK) {
        lua_remove(L, -2);
        saveline(line);
    } else {
        lua_pop(L, 2);
    }
    return status;
}

/* Reads continuation lines until the chunk on the stack is complete. */
static int multiline(lua_State *L)
{
    for (;;) {
        size_t len;
        const char *line = lua_tolstring(L, 1, &len);
        int status = luaL_loadbuffer(L, line, len, "=stdin");
        int r;
        if (!incomplete(L, status) || (r = pushline(L, 0)) == LINE_EOF) {
            saveline(line);
            return status;
        }
        if (r == LINE_INTERRUPTED) { /* Ctrl-C abandons the chunk */
            lua_settop(L, 1);
            return luaL_loadbuffer(L, "", 0, "=stdin");
        }
        lua_pushliteral(L, "\n");
        lua_insert(L, -2);
        lua_concat(L, 3);
    }
}

/* Reads and compiles one statement, first as an expression. Returns -1 at end
 * of input, else the load status with the chunk or message on the stack. */
static int loadline(lua_State *L)
{
    int status;
    lua_settop(L, 0);
    if (pushline(L, 1) == LINE_EOF)
        return -1;
    if ((status = addreturn(L)) != LUA_OK)
        status = multiline(L);
    lua_remove(L, 1);
    return status;
}

/* Prints every value on the stack with the global print (tab-separated). */
static void l_print(lua_State *L)
{
    int n = lua_gettop(L);
    if (n > 0) {
        luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
        lua_getglobal(L, "print");
        lua_insert(L, 1);
        if (lua_pcall(L, n, 0, 0) != LUA_OK)
            lua_writestringerror("error calling 'print' (%s)\n", lua_tostring(L, -1));
    }
}

/* ---- the REPL's globals ---- */

/* braid as a global, and the submodules bound on first use through an
 * __index on _G (REPL only; a script's _G is left alone). A module this
 * build lacks reads as nil, like any unset global; an error while loading
 * one (a Ctrl-C) is raised. */
static const char repl_setup[] =
    "braid = require 'braid'\n"
    "if getmetatable(_G) == nil then\n"
    "  local lazy = {threading = true, queue = true, futures = true, pool = true,\n"
    "                multiprocessing = true, asyncio = true, shared = true}\n"
    "  setmetatable(_G, {__braid_lazy = lazy, __index = function(g, k)\n"
    "    if lazy[k] then\n"
    "      local m = require('braid.' .. k)\n"
    "      rawset(g, k, m)\n"
    "      return m\n"
    "    end\n"
    "  end})\n"
    "end\n";

/* asyncio at the prompt: if braid.asyncio is loaded and offers
 * __repl_run(chunk), a line runs as __repl_run(chunk) (on an event loop
 * that persists between lines, so a chunk may suspend and tasks it starts
 * keep running while the user types), else as chunk(). Stack: the chunk is
 * replaced by its results or an error message. */
static int run_chunk(lua_State *L)
{
    int base = lua_gettop(L);
    /* loaded up front: a line may name `asyncio` (bound on first use) only
     * once it already runs */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "braid.asyncio");
    if (lua_pcall(L, 1, 0, 0) != LUA_OK)
        lua_pop(L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, "braid.asyncio") == LUA_TTABLE &&
        lua_getfield(L, -1, "__repl_run") == LUA_TFUNCTION) {
        lua_replace(L, base + 1);
        lua_settop(L, base + 1);
        lua_insert(L, base); /* __repl_run, chunk */
        return main_docall(L, 1, LUA_MULTRET);
    }
    lua_settop(L, base);
    return main_docall(L, 0, LUA_MULTRET);
}

/* Ctrl-D: the non-daemon threads main() will join at exit, announced. */
static void note_waiting_threads(lua_State *L)
{
    static const char count[] = "local t = package.loaded['braid.threading']\n"
                                "if not t then return 0 end\n"
                                "local n, main = 0, t.main_thread()\n"
                                "for _, th in ipairs(t.enumerate()) do\n"
                                "  if th ~= main and not th.daemon then n = n + 1 end\n"
                                "end\n"
                                "return n\n";
    if (luaL_dostring(L, count) == LUA_OK && lua_tointeger(L, -1) > 0) {
        lua_Integer n = lua_tointeger(L, -1);
        fprintf(stderr,
                "waiting for %lld non-daemon thread%s to finish (Ctrl-C to quit now)\n",
                (long long)n,
                n == 1 ? "" : "s");
        fflush(stderr);
    }
    lua_settop(L, 0);
}

void repl_run(lua_State *L, const char **progname)
{
    int status;
    const char *oldprogname = *progname;
    *progname = NULL;
    replL = L;
    if (luaL_dostring(L, repl_setup) != LUA_OK)
        main_report(L, LUA_ERRRUN);
    use_readline = isatty(STDIN_FILENO) && edit_open();
    if (use_readline) {
        rl_catch_signals = 0; /* our handler makes readline return on Ctrl-C */
        main_setsignal(SIGINT, prompt_action);
        if (isatty(STDOUT_FILENO))
            capture_open();
        rl_getc_function = repl_getc;
        const char *tty = ttyname(STDIN_FILENO);
        key_fd = tty ? open(tty, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC) : -1;
        rl_attempted_completion_function = complete;
        rl_completer_word_break_characters = " \t\n\"\\'`@$><=;|&{}()[]+-*/%^~#,";
        rl_completion_append_character = '\0';
        history_open();
    }
    while ((status = loadline(L)) != -1) {
        if (status == LUA_OK)
            status = run_chunk(L);
        if (status == LUA_OK)
            l_print(L);
        else
            main_report(L, status);
    }
    lua_settop(L, 0);
    lua_writeline();
    if (use_readline)
        note_waiting_threads(L);
    capture_close();
    if (key_fd >= 0)
        close(key_fd);
    key_fd = -1;
    if (use_readline)
        main_setsignal(SIGINT, SIG_DFL);
    candidates_free();
    free(history_path);
    history_path = NULL;
    *progname = oldprogname;
}
