#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "internal.h"
#include "pen.h"

void pl_hex_format(const uint8_t *data, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[data[i] >> 4];
		out[2 * i + 1] = digits[data[i] & 15];
	}
	out[2 * len] = 0;
}

void pl_uuid_format(const uint8_t uuid[16], char out[37])
{
	char *p = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*p++ = '-';
		pl_hex_format(&uuid[i], 1, p);
		p += 2;
	}
	*p = 0;
}

void pl_sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 0;
	if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) || n != 32)
		memset(out, 0, 32); /* only on a broken libcrypto; never matches a record */
}

int pl_sha256_file(const char *path, uint8_t out[32])
{
	if (!path || !out)
		return pl__fail(PL_ERR_ARG, "pl_sha256_file: missing argument");
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return pl__fail(errno == ENOENT ? PL_ERR_NOT_FOUND
		                : errno == EACCES ? PL_ERR_ACCESS
		                                  : PL_ERR_IO,
		                "cannot open %s: %s", path, strerror(errno));
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(ctx);
		close(fd);
		return pl__fail(PL_ERR_MEM, "cannot set up SHA-256");
	}
	enum { BUF = 65536 };
	uint8_t *buf = malloc(BUF);
	if (!buf) {
		EVP_MD_CTX_free(ctx);
		close(fd);
		return pl__fail(PL_ERR_MEM, "out of memory");
	}
	int rc = PL_OK;
	for (;;) {
		ssize_t n = read(fd, buf, BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = pl__fail(PL_ERR_IO, "cannot read %s: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		if (!EVP_DigestUpdate(ctx, buf, (size_t)n)) {
			rc = pl__fail(PL_ERR_MEM, "SHA-256 failed on %s", path);
			break;
		}
	}
	unsigned int len = 0;
	if (!rc && (!EVP_DigestFinal_ex(ctx, out, &len) || len != 32))
		rc = pl__fail(PL_ERR_MEM, "SHA-256 failed on %s", path);
	EVP_MD_CTX_free(ctx);
	free(buf);
	close(fd);
	return rc;
}

void pl__copy_text(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	if (!cap)
		return;
	for (; src && src[n] && n < cap - 1; n++) {
		unsigned char c = (unsigned char)src[n];
		dst[n] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
	}
	if (src && src[n]) {
		/* Truncated: drop a multi-byte character cut in half. */
		size_t k = n;
		while (k && ((unsigned char)dst[k - 1] & 0xc0) == 0x80)
			k--;
		if (k && (unsigned char)dst[k - 1] >= 0xc0) {
			unsigned char lead = (unsigned char)dst[k - 1];
			size_t need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : 2;
			if (n - (k - 1) < need)
				n = k - 1;
		}
	}
	dst[n] = 0;
}

void pl__options_copy(void *dst, size_t dst_size, const void *src)
{
	size_t size;
	memcpy(&size, src, sizeof size);
	if (size == 0 || size > dst_size)
		size = dst_size;
	memcpy(dst, src, size);
	memcpy(dst, &dst_size, sizeof dst_size);
}
