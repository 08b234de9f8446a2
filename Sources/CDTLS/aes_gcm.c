#include "cdtls.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>

struct tandem_aes_gcm {
    EVP_CIPHER_CTX *ctx;
    int encrypt;
};

tandem_aes_gcm *tandem_aes_gcm_new(const uint8_t *key16, int encrypt) {
    tandem_aes_gcm *gcm = calloc(1, sizeof *gcm);
    if (!gcm) return NULL;
    gcm->ctx = EVP_CIPHER_CTX_new();
    gcm->encrypt = encrypt;
    int ok = gcm->ctx != NULL
        && (encrypt ? EVP_EncryptInit_ex(gcm->ctx, EVP_aes_128_gcm(), NULL, key16, NULL)
                    : EVP_DecryptInit_ex(gcm->ctx, EVP_aes_128_gcm(), NULL, key16, NULL)) == 1
        && EVP_CIPHER_CTX_ctrl(gcm->ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1;
    if (!ok) {
        tandem_aes_gcm_free(gcm);
        return NULL;
    }
    return gcm;
}

void tandem_aes_gcm_free(tandem_aes_gcm *gcm) {
    if (!gcm) return;
    EVP_CIPHER_CTX_free(gcm->ctx);
    free(gcm);
}

int tandem_aes_gcm_seal(tandem_aes_gcm *gcm, const uint8_t *iv12, const uint8_t *aad, size_t aad_length, uint8_t *data, size_t length, uint8_t *tag16) {
    int n = 0, written = 0, tail = 0;
    if (!gcm->encrypt || aad_length > 0x7FFFFFFF || length > 0x7FFFFFFF) return -1;
    if (EVP_EncryptInit_ex(gcm->ctx, NULL, NULL, NULL, iv12) != 1) return -1;
    if (aad_length && EVP_EncryptUpdate(gcm->ctx, NULL, &n, aad, (int)aad_length) != 1) return -1;
    if (length && EVP_EncryptUpdate(gcm->ctx, data, &written, data, (int)length) != 1) return -1;
    /* GCM writes nothing at the end; the tag is read separately. */
    if (EVP_EncryptFinal_ex(gcm->ctx, data + written, &tail) != 1) return -1;
    return EVP_CIPHER_CTX_ctrl(gcm->ctx, EVP_CTRL_GCM_GET_TAG, 16, tag16) == 1 ? 0 : -1;
}

int tandem_aes_gcm_open(tandem_aes_gcm *gcm, const uint8_t *iv12, const uint8_t *aad, size_t aad_length, uint8_t *data, size_t length, const uint8_t *tag16) {
    int n = 0, written = 0, tail = 0;
    uint8_t tag[16];
    if (gcm->encrypt || aad_length > 0x7FFFFFFF || length > 0x7FFFFFFF) return -1;
    memcpy(tag, tag16, 16);
    if (EVP_DecryptInit_ex(gcm->ctx, NULL, NULL, NULL, iv12) != 1) return -1;
    if (aad_length && EVP_DecryptUpdate(gcm->ctx, NULL, &n, aad, (int)aad_length) != 1) return -1;
    if (length && EVP_DecryptUpdate(gcm->ctx, data, &written, data, (int)length) != 1) return -1;
    if (EVP_CIPHER_CTX_ctrl(gcm->ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1) return -1;
    /* OpenSSL compares the tag in constant time; on a mismatch the caller drops the packet. */
    return EVP_DecryptFinal_ex(gcm->ctx, data + written, &tail) == 1 ? 0 : -1;
}

int tandem_aes_cm_keystream(const uint8_t *key16, const uint8_t *iv16, uint8_t *out, size_t length) {
    int n = 0, ok = 0;
    if (length > 0x7FFFFFFF) return -1;
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx) return -1;
    memset(out, 0, length);
    ok = EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, key16, iv16) == 1
        && EVP_EncryptUpdate(ctx, out, &n, out, (int)length) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok ? 0 : -1;
}
