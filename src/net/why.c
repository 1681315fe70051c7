/*
 * why.c - a tiny async-signal-safe formatter for protocol error messages
 * (see why.h).
 */
#include <errno.h>
#include <stdarg.h>

#include "net/why.h"

static size_t put_c(char *b, size_t at, size_t cap, char c)
{
	if (at + 1 < cap)
		b[at++] = c;
	return at;
}

static size_t put_u(char *b, size_t at, size_t cap, uint64_t v, unsigned base)
{
	char tmp[24];
	int n = 0;

	do {
		unsigned d = (unsigned)(v % base);

		tmp[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10);
		v /= base;
	} while (v);
	if (base == 16) {
		at = put_c(b, at, cap, '0');
		at = put_c(b, at, cap, 'x');
	}
	while (n)
		at = put_c(b, at, cap, tmp[--n]);
	return at;
}

static void vwhy(char *why, size_t len, const char *fmt, va_list ap)
{
	size_t at = 0;

	if (!why || !len)
		return;
	for (const char *p = fmt; *p; p++) {
		if (*p != '%' || !p[1]) {
			at = put_c(why, at, len, *p);
			continue;
		}
		switch (*++p) {
		case 's': {
			const char *s = va_arg(ap, const char *);

			while (s && *s)
				at = put_c(why, at, len, *s++);
			break;
		}
		case 'u':
			at = put_u(why, at, len, va_arg(ap, unsigned), 10);
			break;
		case 'U':
			at = put_u(why, at, len, va_arg(ap, uint64_t), 10);
			break;
		case 'X':
			at = put_u(why, at, len, va_arg(ap, uint64_t), 16);
			break;
		default:
			at = put_c(why, at, len, *p);
		}
	}
	why[at] = '\0';
}

int lm_net_why(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwhy(why, len, fmt, ap);
	va_end(ap);
	return -EPROTO;
}

void lm_net_whyf(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vwhy(why, len, fmt, ap);
	va_end(ap);
}
