/* SPDX-License-Identifier: MIT */
/*
 * Scenario files of fake-smtp: parsing the rule language (described at the
 * top of fake_smtp.c and in tests/scenarios/README.md), choosing the rule
 * that answers a command, and rendering a rule's reply into wire bytes.
 * Nothing here touches a socket; the per-connection counters that rules
 * with limit= need belong to the caller.
 */
#ifndef FAKE_SMTP_SCENARIO_H
#define FAKE_SMTP_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>

#define SCN_MAX_RULES 256
#define SCN_VERB_MAX 16
#define SCN_PATTERN_MAX 256
#define SCN_LINE_MAX 65536
/* Cap on one rendered reply, so lines= and pad= cannot exhaust memory. */
#define SCN_REPLY_MAX (4u * 1024u * 1024u)

/* Which TLS state a rule applies to (option tls=yes|no). */
enum scn_tls {
    SCN_TLS_ANY,
    SCN_TLS_NO,
    SCN_TLS_YES
};

struct scn_rule {
    char verb[SCN_VERB_MAX];      /* upper case; GREETING, DATAEND, ANY */
    bool has_pattern;             /* MAIL and RCPT rules only */
    char pattern[SCN_PATTERN_MAX]; /* lower-case glob; "" for <> */
    long delay_ms;                /* wait before replying */
    long greylist_ms;             /* 0: no greylisting */
    long limit;                   /* uses per connection; 0: no limit */
    long conn;                    /* connection number; 0: every one */
    enum scn_tls tls;
    long lines;                   /* repeat the reply as N lines */
    long pad;                     /* pad each line to N octets */
    bool drop;                    /* close without a reply */
    bool close;                   /* close after the reply */
    char *reply;                  /* unescaped; CRLF between lines */
    size_t reply_len;
    int source_line;              /* line in the scenario file, 0: default */
};

struct scenario {
    struct scn_rule rules[SCN_MAX_RULES];
    size_t nrules;
    long timeout_ms;              /* idle timeout per connection */
};

/* What a client sent, as the rule matcher sees it. */
struct scn_command {
    const char *verb;             /* upper case, "" for an empty line */
    const char *address;          /* lower case, MAIL/RCPT only, or NULL */
    long conn;                    /* 1-based connection number */
    bool tls;                     /* TLS active on this connection */
};

/*
 * Parses the scenario at path into scn, then appends the built-in default
 * rules. Returns 0, or -1 after writing "path:line: reason" into err.
 * Reply buffers are heap-owned by scn; release them with scenario_free().
 */
int scenario_load(struct scenario *scn, const char *path, char *err,
                  size_t errlen);

void scenario_free(struct scenario *scn);

/*
 * Returns the index of the first rule that matches cmd and whose limit=
 * the per-connection use counts in uses[] (SCN_MAX_RULES entries) have not
 * reached. The built-in defaults guarantee a match.
 */
size_t scenario_match(const struct scenario *scn, const struct scn_command *cmd,
                      const unsigned *uses);

/*
 * Renders the reply of rule into a new heap buffer of *len bytes ending in
 * CRLF, applying lines= and pad=. The caller frees it.
 */
char *scenario_render(const struct scn_rule *rule, size_t *len);

#endif
