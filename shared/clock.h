/* SPDX-License-Identifier: MIT */
/* Wall-clock and monotonic time in milliseconds. */
#ifndef MXPROBE_CLOCK_H
#define MXPROBE_CLOCK_H

#include <stdint.h>

/* Unix time in milliseconds (for checked_at and due times kept in Redis). */
int64_t clock_wall_ms(void);
/* Monotonic milliseconds (for durations inside one process). */
int64_t clock_mono_ms(void);

#endif
