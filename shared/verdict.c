/* SPDX-License-Identifier: MIT */
/* Wire names of statuses and reasons, and the status each reason implies. */
#include "verdict.h"

#include <string.h>

static const char *const status_names[] = {
    [VS_DELIVERABLE] = "deliverable",
    [VS_UNDELIVERABLE] = "undeliverable",
    [VS_RISKY] = "risky",
    [VS_UNKNOWN] = "unknown",
};

_Static_assert(sizeof status_names / sizeof status_names[0] == VS_NSTATUSES,
               "status_names must name every status");

struct reason_entry {
    const char *name;
    enum verdict_status status;
};

static const struct reason_entry reasons[] = {
    [VR_ACCEPTED] = {"accepted", VS_DELIVERABLE},
    [VR_SYNTAX] = {"syntax", VS_UNDELIVERABLE},
    [VR_DOMAIN_NOT_FOUND] = {"domain_not_found", VS_UNDELIVERABLE},
    [VR_NULL_MX] = {"null_mx", VS_UNDELIVERABLE},
    [VR_NO_MAIL_SERVER] = {"no_mail_server", VS_UNDELIVERABLE},
    [VR_MAILBOX_NOT_FOUND] = {"mailbox_not_found", VS_UNDELIVERABLE},
    [VR_MAILBOX_DISABLED] = {"mailbox_disabled", VS_UNDELIVERABLE},
    [VR_CATCH_ALL] = {"catch_all", VS_RISKY},
    [VR_MAILBOX_FULL] = {"mailbox_full", VS_RISKY},
    [VR_GREYLISTED] = {"greylisted", VS_UNKNOWN},
    [VR_TIMEOUT] = {"timeout", VS_UNKNOWN},
    [VR_MX_UNREACHABLE] = {"mx_unreachable", VS_UNKNOWN},
    [VR_BLOCKED] = {"blocked", VS_UNKNOWN},
    [VR_RATE_LIMITED] = {"rate_limited", VS_UNKNOWN},
    [VR_SENDER_REJECTED] = {"sender_rejected", VS_UNKNOWN},
    [VR_PROTOCOL_ERROR] = {"protocol_error", VS_UNKNOWN},
    [VR_DNS_ERROR] = {"dns_error", VS_UNKNOWN},
    [VR_TEMPORARY_FAILURE] = {"temporary_failure", VS_UNKNOWN},
};

_Static_assert(sizeof reasons / sizeof reasons[0] == VR_NREASONS,
               "reasons must name every reason");

const char *
verdict_status_str(enum verdict_status st)
{
    if ((unsigned)st >= VS_NSTATUSES)
        return "unknown";
    return status_names[st];
}

const char *
verdict_reason_str(enum verdict_reason r)
{
    if ((unsigned)r >= VR_NREASONS)
        return "temporary_failure";
    return reasons[r].name;
}

enum verdict_status
verdict_reason_status(enum verdict_reason r)
{
    if ((unsigned)r >= VR_NREASONS)
        return VS_UNKNOWN;
    return reasons[r].status;
}

bool
verdict_status_parse(const char *name, enum verdict_status *out)
{
    for (int i = 0; i < VS_NSTATUSES; i++) {
        if (strcmp(name, status_names[i]) == 0) {
            *out = (enum verdict_status)i;
            return true;
        }
    }
    return false;
}

bool
verdict_reason_parse(const char *name, enum verdict_reason *out)
{
    for (int i = 0; i < VR_NREASONS; i++) {
        if (strcmp(name, reasons[i].name) == 0) {
            *out = (enum verdict_reason)i;
            return true;
        }
    }
    return false;
}

static const char *const stage_names[] = {
    [SMTP_STAGE_CONNECT] = "connect",
    [SMTP_STAGE_GREETING] = "greeting",
    [SMTP_STAGE_EHLO] = "ehlo",
    [SMTP_STAGE_MAIL] = "mail",
    [SMTP_STAGE_RCPT] = "rcpt",
};

_Static_assert(sizeof stage_names / sizeof stage_names[0] == SMTP_STAGE_NSTAGES,
               "stage_names must name every stage");

const char *
smtp_stage_str(enum smtp_stage stage)
{
    if ((unsigned)stage >= SMTP_STAGE_NSTAGES)
        return "connect";
    return stage_names[stage];
}

bool
smtp_stage_parse(const char *name, enum smtp_stage *out)
{
    for (int i = 0; i < SMTP_STAGE_NSTAGES; i++) {
        if (strcmp(name, stage_names[i]) == 0) {
            *out = (enum smtp_stage)i;
            return true;
        }
    }
    return false;
}
