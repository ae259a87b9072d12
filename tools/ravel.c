/* The ravel command: serve a LevelDB directory, read and write it from the
 * shell while other processes hold it, and a live demo of party mode. This
 * file holds the table of commands, their help and the dispatch. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "ravel.h"

static const char target_help[] =
    "DIR is a LevelDB directory, opened in party mode: when another process\n"
    "holds it (a 'ravel serve', an application using ravel_open, a Node\n"
    "rave-level process), the command joins its party and works through it;\n"
    "otherwise it opens LevelDB itself for as long as it runs.\n"
    "\n"
    "options:\n"
    "  -c, --connect ADDRESS  use the host at ADDRESS instead of a directory:\n"
    "                         unix:PATH, tcp:HOST:PORT, or tcp:PORT for\n"
    "                         127.0.0.1:PORT; tls:HOST:PORT (tls:PORT) for TLS;\n"
    "                         multileveldown+unix:PATH or multileveldown+tcp:...\n"
    "                         for a Node multileveldown 5 host\n"
    "  --tls-ca FILE          with tls:, the CA bundle (PEM) that signed the\n"
    "                         host's certificate (default: the system's CAs);\n"
    "                         the certificate must name HOST\n"
    "  --tls-cert FILE, --tls-key FILE\n"
    "                         with tls:, this client's certificate and key\n"
    "                         (PEM), for a host that requires one\n"
    "  --tls-server-name NAME with tls:, the name the host's certificate\n"
    "                         must carry when it is not HOST\n"
    "  -e, --escapes          in KEY, VALUE and the range options, \\xNN is the\n"
    "                         byte NN (hex) and \\\\ a backslash; without -e\n"
    "                         they are taken byte for byte\n"
    "  -t, --timeout MS       wait at most MS milliseconds for the database: for\n"
    "                         DIR locked by a program that does not share it\n"
    "                         (default 10000) or left without a leader, or for\n"
    "                         the host at ADDRESS to answer (default: one try)\n"
    "  -h, --help             this text\n";

/* The help of each OPTS_* group, in the order printed. */
static const struct {
    unsigned flag;
    const char *text;
} opts_help[] = {
    {OPTS_RANGE, "  --gt KEY, --gte KEY    only keys after (at or after) KEY\n"
                 "  --lt KEY, --lte KEY    only keys before (at or before) KEY\n"
                 "  -p, --prefix P         only keys that start with P (not with bounds)\n"
                 "  -n, --limit N          at most N entries\n"
                 "  -r, --reverse          from the last key down (with --limit, the last N)\n"},
    {OPTS_PROJECT, "  --keys                 keys only\n"
                   "  --values               values only\n"},
    {OPTS_RAW, "  --raw                  write the value's bytes as they are\n"},
    {OPTS_FORCE, "  -f, --force            clear everything without asking\n"},
    {OPTS_OUTPUT, "  -o, --output FILE      write to FILE instead of stdout\n"},
};

static const char text_help[] =
    "\n"
    "text output: printable UTF-8 as it is, a backslash as \\\\, every other\n"
    "byte (control characters, bytes that are not UTF-8) as \\xNN. -e reads\n"
    "that back: a key shown by ls can be given to get -e as it is shown.\n";

static const char lines_help[] =
    "\n"
    "line format: one JSON object per line, the key and the value as JSON\n"
    "strings when their bytes are valid UTF-8, else as standard padded\n"
    "base64 (RFC 4648) under key_b64 / value_b64:\n"
    "  {\"key\":\"user/1\",\"value\":\"Ada\\nLovelace\"}\n"
    "  {\"key_b64\":\"AP8K\",\"value\":\"\\u0000\"}\n"
    "load takes any JSON whitespace and escapes (\\uXXXX, surrogate pairs,\n"
    "\\u0000 for NUL), the members in either order, and blank lines.\n";

static const char exit_help[] =
    "\n"
    "exit codes: 0 ok, 1 not found (get of a missing key), 2 usage error,\n"
    "3 any other failure (the message on stderr says which), 4 a condition\n"
    "(--if-value, --if-absent) did not hold: nothing was written.\n";

static const cli_command commands[] = {
    {.name = "serve", .main = serve_main,
     .usage = "DIR --listen ADDRESS [--listen ADDRESS...] [--readonly] [--quiet]\n"
              "       [--tls-cert FILE --tls-key FILE [--tls-ca FILE] [--tls-allow RULE...]]\n"
              "       [--max-connections N]",
     .summary = "host DIR for ravel and Node many-level guests",
     .help = "Host the LevelDB directory DIR for guests, ravel (ravel_connect,\n"
             "--connect) and Node many-level, on each ADDRESS until SIGINT or SIGTERM.\n"
             "\n"
             "DIR is opened in party mode. If nobody holds it, serve leads it and also\n"
             "serves DIR/rave-level.sock and DIR/level-party.sock, so ravel, Node\n"
             "rave-level and Node level-party 5 processes that open DIR meanwhile\n"
             "join it instead of waiting. If another process leads\n"
             "it, serve follows and passes its guests' requests on to the leader (and\n"
             "takes over when the leader goes away). It says on stderr which it does.\n"
             "\n"
             "options:\n"
             "  -l, --listen ADDRESS   unix:PATH (an owner-only socket), tcp:HOST:PORT,\n"
             "                         or tcp:PORT and tcp::PORT for 127.0.0.1:PORT\n"
             "                         (tcp:0.0.0.0:PORT for every interface); port 0\n"
             "                         picks a free one and logs it; tls:HOST:PORT\n"
             "                         (tls:PORT) the same with TLS. Repeatable.\n"
             "                         multileveldown+unix:PATH, multileveldown+tcp:...\n"
             "                         serve Node multileveldown 5 guests instead.\n"
             "  --readonly             refuse writes from guests on these addresses\n"
             "                         (party members still write through the leader)\n"
             "  --tls-cert FILE        for tls: addresses, the host's certificate chain\n"
             "                         (PEM, leaf first)\n"
             "  --tls-key FILE         its private key (PEM, unencrypted)\n"
             "  --tls-ca FILE          require a client certificate signed by a CA in\n"
             "                         FILE (mutual TLS); without it, anyone who\n"
             "                         reaches a tls: port is served\n"
             "  --tls-allow RULE       with --tls-ca, serve only the client certificates\n"
             "                         named by a rule: ro:SUBJECT or rw:SUBJECT (the\n"
             "                         subject as 'openssl x509 -noout -subject\n"
             "                         -nameopt RFC2253' prints it, e.g.\n"
             "                         'ro:CN=dashboard,O=Example'), or\n"
             "                         ro:sha256:FINGERPRINT / rw:sha256:FINGERPRINT;\n"
             "                         ro ones may not write. Repeatable; first match.\n"
             "  --max-connections N    refuse connections beyond N open ones (default\n"
             "                         1024)\n"
             "  -q, --quiet            do not log connections and their errors\n"
             "  -h, --help             this text\n"
             "\n"
             "Prints 'ready' on stdout once it listens. On SIGINT or SIGTERM it answers\n"
             "the requests under way, closes its connections, removes its unix sockets\n"
             "and exits 0.\n"},
    {.name = "get", .usage = "KEY", .summary = "print the value of KEY",
     .help = "Print the value of KEY as text, then a newline; with --raw, its exact\n"
             "bytes and nothing more. A missing key exits 1.\n",
     .main = data_main, .run = data_get, .min_args = 1, .max_args = 1, .byte_args = 1,
     .opts = OPTS_RAW, .docs = DOC_TEXT},
    {.name = "put", .usage = "KEY VALUE|-", .summary = "set KEY to VALUE (- reads it from stdin)",
     .help = "Set KEY to VALUE. With VALUE '-', the value is all of stdin, byte for\n"
             "byte (a value that is just '-' is -e '\\x2d'). Creates the database when\n"
             "DIR holds none.\n"
             "  --if-value OLD  only if KEY holds exactly OLD now (atomically)\n"
             "  --if-absent     only if KEY is absent now (atomically)\n"
             "A condition that does not hold writes nothing and exits 4.\n",
     .main = data_main, .run = data_put, .opts = OPTS_IF, .min_args = 2, .max_args = 2,
     .byte_args = 1, .creates = 1},
    {.name = "del", .usage = "KEY", .summary = "delete KEY",
     .help = "Delete KEY. Deleting an absent key is not an error (as in LevelDB).\n"
             "  --if-value OLD  only if KEY holds exactly OLD now (atomically);\n"
             "                  otherwise nothing is deleted and it exits 4\n",
     .main = data_main, .run = data_del, .opts = OPTS_IF, .min_args = 1, .max_args = 1,
     .byte_args = 1},
    {.name = "ls", .usage = "", .summary = "list entries, one per line",
     .help = "List the entries in key order, one per line: the key, a tab, the value,\n"
             "both as text (below), so that every entry is exactly one line.\n",
     .main = data_main, .run = data_ls, .opts = OPTS_RANGE | OPTS_PROJECT, .docs = DOC_TEXT},
    {.name = "count", .usage = "", .summary = "count entries",
     .help = "Print the number of entries.\n",
     .main = data_main, .run = data_count, .opts = OPTS_RANGE},
    {.name = "clear", .usage = "", .summary = "delete a range of entries, or all of them",
     .help = "Delete the entries in the range. Without a bound or --limit that is every\n"
             "entry: then, on a terminal, clear first asks 'clear ALL entries of DIR?\n"
             "[y/N]' (anything but y or yes keeps them and exits 3), and when stdin is\n"
             "not a terminal it refuses and exits 2, unless --force is given.\n",
     .main = data_main, .run = data_clear, .opts = OPTS_RANGE | OPTS_FORCE},
    {.name = "dump", .usage = "", .summary = "write entries as JSON lines",
     .help = "Write the entries to stdout, or FILE, in the line format below, in key\n"
             "order. A progress line (entries, rate) is shown on stderr when stderr is\n"
             "a terminal and the entries do not go to one.\n",
     .main = data_main, .run = data_dump, .opts = OPTS_RANGE | OPTS_OUTPUT, .docs = DOC_LINES},
    {.name = "load", .usage = "[FILE]", .summary = "write entries read as JSON lines",
     .help = "Read entries in the line format below from FILE (stdin without FILE, or\n"
             "with -) and write them, up to 1000 entries or 4 MiB per atomic batch.\n"
             "Existing keys are overwritten; nothing is deleted. At a bad line, the\n"
             "entries before it are written and load stops (exit 3, the line number in\n"
             "the message). Progress as for dump. Creates the database when DIR holds\n"
             "none.\n",
     .main = data_main, .run = data_load, .max_args = 1, .creates = 1, .docs = DOC_LINES},
    {.name = "backup", .usage = "DEST", .summary = "copy one snapshot of DIR into a new LevelDB",
     .help = "Copy every entry of DIR, read from one snapshot, into DEST, a new LevelDB\n"
             "directory that plain LevelDB opens. Other processes may join DIR's party\n"
             "and keep writing meanwhile: nothing they write during the copy is half\n"
             "in it. With -o FILE, the same entries also go to FILE as JSON lines (what\n"
             "dump writes), from the same snapshot: 'ravel dump DEST | cmp - FILE'\n"
             "checks the copy. Progress on stderr when it is a terminal. DEST must not\n"
             "exist yet (or be empty); a copy that fails midway is removed.\n"
             "\n"
             "The snapshot is LevelDB's own where backup leads DIR, else one that the\n"
             "leader (or, with --connect, the host) keeps for backup's connection. If\n"
             "that leader goes away during the copy, the snapshot goes with it: the\n"
             "copy starts again from a new one (three tries in all).\n",
     .main = data_main, .run = data_backup, .min_args = 1, .max_args = 1,
     .opts = OPTS_OUTPUT},
    {.name = "compact", .usage = "", .summary = "compact a range of keys, or all of them",
     .help = "Have LevelDB compact the keys in the range (all of them without a bound):\n"
             "deleted and overwritten entries are dropped from its files and the rest\n"
             "rewritten in order (LevelDB's compact_range). Through a leader in another\n"
             "process or a host, the leader compacts. Waits until it is done; reads\n"
             "and writes of others go on meanwhile.\n",
     .main = data_main, .run = data_compact, .opts = OPTS_RANGE},
    {.name = "watch", .usage = "[--from SEQ]", .summary = "print each change as it happens",
     .help = "Print every change that any process makes to the range, as it happens,\n"
             "one JSON line each, in commit order, until interrupted (or --limit N\n"
             "writes):\n"
             "  {\"seq\":N,\"type\":\"put\",\"key\":\"...\",\"value\":\"...\"}\n"
             "  {\"seq\":N,\"type\":\"del\",\"key\":\"...\"}\n"
             "with key_b64/value_b64 for bytes that are not UTF-8, as dump writes.\n"
             "N strictly increases from write to write; the changes of one batch share\n"
             "it. A clear arrives as its deletes.\n"
             "  --from SEQ  start after SEQ (the last seq a watch printed) instead of now\n"
             "When changes after a seq cannot be delivered (a new leader without the\n"
             "change log, a start older than the log keeps, a watch that fell behind):\n"
             "  {\"type\":\"resync\",\"from\":A,\"seq\":B,\"range\":{...}}\n"
             "changes after A up to B may be missing: re-read the range; changes after\n"
             "B follow. Never a silent gap. Against a Node leader or host: exit 3.\n",
     .main = data_main, .run = data_watch, .opts = OPTS_RANGE | OPTS_FROM},
    {.name = "changelog", .usage = "[on [MAX_COUNT [MAX_BYTES]] | off]",
     .summary = "show or set the change log that watches resume from",
     .help = "Show the change log of the database, or turn it on (keeping at most\n"
             "MAX_COUNT changes, default 100000, and MAX_BYTES bytes, default 64 MiB;\n"
             "0 for a default) or off (which deletes it). With it on, every change is\n"
             "also written in the same LevelDB batch as the data, and a watch resumes\n"
             "exactly after any seq still kept, across leaders; off, a new leader\n"
             "answers a resuming watch with resync. Prints one JSON line: on,\n"
             "max_count, max_bytes, seq (the last given out), floor (resumes exactly\n"
             "after any seq >= floor), records and bytes kept. The setting is the\n"
             "database's: it stays when every process has closed it.\n",
     .main = data_main, .run = data_changelog, .max_args = 3},
    {.name = "info", .main = info_main, .usage = "DIR | --connect ADDRESS  [--json]",
     .summary = "who leads DIR, its size; or who answers at ADDRESS",
     .help = "Tell what can be known cheaply, without opening LevelDB (so nothing is\n"
             "written, and a locked directory is no wait):\n"
             "\n"
             "  DIR: whether it holds a LevelDB database (a CURRENT file), its size on\n"
             "  disk, who leads it — the pid on its rave-level.sock, and whether that\n"
             "  is ravel (its host announces itself) or Node rave-level — and how many\n"
             "  connections its socket has (its members), or which process holds\n"
             "  LevelDB's lock without sharing it.\n"
             "  --connect ADDRESS: whether a host answers there, ravel or not, and its\n"
             "  pid on a unix socket.\n"
             "\n"
             "options:\n"
             "  -c, --connect ADDRESS  a host instead of a directory\n"
             "  -j, --json             one JSON object on stdout instead of lines\n"
             "  -h, --help             this text\n"
             "\n"
             "  DIR: the table options recorded when ravel created it (ravel-options).\n"
             "  With a ravel leader or host: LevelDB's own statistics (leveldb.stats)\n"
             "  and approximate memory use, the exactly-once records and the change\n"
             "  log's state, asked of it. LevelDB keeps no count of\n"
             "  entries; 'ravel count' counts them.\n"
             "\n"
             "Exits 3 when DIR holds no database or nothing answers at ADDRESS (after\n"
             "printing what it found).\n"},
    {.name = "destroy", .main = destroy_main, .usage = "[--force] DIR",
     .summary = "delete the database in DIR (nobody may hold it)",
     .help = "Delete the LevelDB database in DIR: its tables, logs and LOCK, ravel's\n"
             "ravel-options, a stale rave-level.sock and what an earlier repair set\n"
             "aside in DIR/lost; then DIR itself, unless other files are left in it.\n"
             "Refused (exit 3, nothing deleted) while any process holds DIR: a party's\n"
             "leader (the message gives its pid), a plain LevelDB program, anyone\n"
             "answering on DIR/rave-level.sock; and when DIR holds no database.\n"
             "\n"
             "options:\n"
             "  -f, --force            do not ask; without it, destroy asks 'destroy the\n"
             "                         database DIR and ALL its entries? [y/N]' on a\n"
             "                         terminal (anything but y or yes exits 3) and\n"
             "                         refuses (exit 2) when stdin is not one\n"
             "  -h, --help             this text\n"},
    {.name = "repair", .main = repair_main, .usage = "DIR",
     .summary = "rebuild a damaged database from what is left",
     .help = "Rebuild the LevelDB database in DIR from the tables and logs that are\n"
             "left (LevelDB's RepairDB), e.g. after CURRENT or a MANIFEST was lost:\n"
             "what can be read is kept, the files it replaces go to DIR/lost. New\n"
             "tables are written with the options the database was created with\n"
             "(its ravel-options). Refused (exit 3, nothing changed) while any\n"
             "process holds DIR, as for destroy, and when DIR holds no LevelDB files.\n"
             "\n"
             "options:\n"
             "  -h, --help             this text\n"},
    {.name = "demo", .usage = "[--dir DIR] [--seconds N]", .summary = "a live demo of party mode",
     .help = "A live demo of party mode: four writer processes and a reader open DIR\n"
             "(default $TMPDIR/ravel-demo) at once; the first leads and serves the\n"
             "others. The writers keep putting a; the reader watches a and prints each\n"
             "change as it happens. Midway the leader is killed with SIGKILL; a new one\n"
             "is elected and everyone carries on (the reader, without a change log,\n"
             "gets a resync and reads a again). N seconds in all (default 6).\n",
     .main = demo_main},
};

#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void print_usage(void)
{
    fputs("usage: ravel COMMAND [OPTIONS] [ARGS]\n"
          "\n"
          "Many processes, one LevelDB database.\n"
          "\n"
          "commands:\n",
          stdout);
    for (size_t i = 0; i < NCOMMANDS; i++)
        printf("  %-9s %s\n", commands[i].name, commands[i].summary);
    fputs("  help      'ravel help COMMAND' (or 'ravel COMMAND --help') for details\n"
          "  version   ravel's version and LevelDB's (also --version, -V)\n"
          "\n"
          "Data commands (get put del ls count clear dump load backup compact watch\n"
          "changelog) work on a LevelDB directory DIR, also while other processes hold\n"
          "it, or on a host with --connect ADDRESS instead of DIR. Bytes that are not\n"
          "text: -e on the command line, escapes in get and ls, JSON lines with base64\n"
          "in dump, load and watch. All of it: 'man ravel' (in a source tree: man -l\n"
          "docs/ravel.1).\n",
          stdout);
    fputs(exit_help, stdout);
}

void cli_print_help(const cli_command *cmd)
{
    if (cmd->main != data_main) {
        printf("usage: ravel %s %s\n\n%s", cmd->name, cmd->usage, cmd->help);
        fputs(exit_help, stdout);
        return;
    }
    const char *sep = *cmd->usage ? " " : "";
    printf("usage: ravel %s [OPTIONS] DIR%s%s\n"
           "       ravel %s [OPTIONS] --connect ADDRESS%s%s\n\n%s\n",
           cmd->name, sep, cmd->usage, cmd->name, sep, cmd->usage, cmd->help);
    fputs(target_help, stdout);
    for (size_t i = 0; i < sizeof opts_help / sizeof opts_help[0]; i++)
        if (cmd->opts & opts_help[i].flag)
            fputs(opts_help[i].text, stdout);
    puts("An argument that starts with '-' goes after '--'.");
    if (cmd->docs & DOC_TEXT)
        fputs(text_help, stdout);
    if (cmd->docs & DOC_LINES)
        fputs(lines_help, stdout);
    fputs(exit_help, stdout);
}

static const cli_command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static int is_help(const char *arg)
{
    return strcmp(arg, "help") == 0 || strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return cli_usage(NULL, "a command is needed");
    const char *name = argv[1];
    if (is_help(name)) {
        if (argc == 2) {
            print_usage();
            return EXIT_OK;
        }
        const cli_command *cmd = find_command(argv[2]);
        if (!cmd)
            return cli_usage(NULL, "no command %s to explain", argv[2]);
        if (argc > 3)
            return cli_usage(NULL, "help explains one command at a time");
        cli_print_help(cmd);
        return EXIT_OK;
    }
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0 ||
        strcmp(name, "-V") == 0) {
        printf("ravel %s\nLevelDB %s\n", ravel_version(), ravel_leveldb_version());
        return EXIT_OK;
    }
    const cli_command *cmd = find_command(name);
    if (!cmd)
        return cli_usage(NULL, "unknown command %s", name);
    return cmd->main(cmd, argc - 1, argv + 1);
}
