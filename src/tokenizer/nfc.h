/* Unicode NFC (canonical composition), as Qwen2's tokenizer.json normalizer
 * asks for; tables from scripts/gen-nfc-table. Bytes that are not valid
 * UTF-8 pass through unchanged and block composition across them. */
#ifndef EL_TOKENIZER_NFC_H
#define EL_TOKENIZER_NFC_H

#include <stdbool.h>
#include <stddef.h>

#include "core/error.h"

/* True when text is certainly NFC already (the UAX #15 quick check; cheap). */
bool el_nfc_quick_check(const char *text, size_t len);

/* NFC of text into *out (malloc'd, *out_len bytes; NUL-terminated for convenience).
 * Returns 0, or -1 with err set when out of memory. */
int el_nfc(const char *text, size_t len, char **out, size_t *out_len, el_err *err);

#endif
