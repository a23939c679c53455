/* SPDX-License-Identifier: MIT */
/*
 * The public verdict vocabulary: the four statuses and the reasons of the
 * result contract, with their wire names. Changing a name here changes what
 * clients see.
 */
#ifndef MXPROBE_VERDICT_H
#define MXPROBE_VERDICT_H

#include <stdbool.h>

enum verdict_status {
    VS_DELIVERABLE,
    VS_UNDELIVERABLE,
    VS_RISKY,
    VS_UNKNOWN,
    VS_NSTATUSES
};

enum verdict_reason {
    VR_ACCEPTED,
    VR_SYNTAX,
    VR_DOMAIN_NOT_FOUND,
    VR_NULL_MX,
    VR_NO_MAIL_SERVER,
    VR_MAILBOX_NOT_FOUND,
    VR_MAILBOX_DISABLED,
    VR_CATCH_ALL,
    VR_MAILBOX_FULL,
    VR_GREYLISTED,
    VR_TIMEOUT,
    VR_MX_UNREACHABLE,
    VR_BLOCKED,
    VR_RATE_LIMITED,
    VR_SENDER_REJECTED,
    VR_PROTOCOL_ERROR,
    VR_DNS_ERROR,
    VR_TEMPORARY_FAILURE,
    VR_NREASONS
};

/* Three-valued flag, used for the catch-all property of a domain. */
enum tristate {
    TRI_UNKNOWN = -1,
    TRI_NO = 0,
    TRI_YES = 1
};

/* The SMTP stage that gave a deciding reply; "smtp.stage" in results. */
enum smtp_stage {
    SMTP_STAGE_CONNECT,
    SMTP_STAGE_GREETING,
    SMTP_STAGE_EHLO,
    SMTP_STAGE_MAIL,
    SMTP_STAGE_RCPT,
    SMTP_STAGE_NSTAGES
};

const char *smtp_stage_str(enum smtp_stage stage);
bool smtp_stage_parse(const char *name, enum smtp_stage *out);

/* Returns the wire name ("deliverable", "mailbox_not_found", ...). */
const char *verdict_status_str(enum verdict_status st);
const char *verdict_reason_str(enum verdict_reason r);

/* Returns the status that the contract pairs with reason r. */
enum verdict_status verdict_reason_status(enum verdict_reason r);

/* Parses a wire name; returns false when name is not one of them. */
bool verdict_status_parse(const char *name, enum verdict_status *out);
bool verdict_reason_parse(const char *name, enum verdict_reason *out);

#endif
