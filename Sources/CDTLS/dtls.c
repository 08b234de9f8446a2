#include "cdtls.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#define TANDEM_DTLS_QUEUE 32
#define TANDEM_DTLS_DATAGRAM 1500

struct tandem_dtls_identity {
    SSL_CTX *ctx;
    X509 *certificate;
    EVP_PKEY *key;
};

struct tandem_dtls {
    SSL *ssl;
    BIO *incoming;
    int mtu;
    int peer_closed;
    unsigned long last_error;
    int queued;
    int head;
    size_t lengths[TANDEM_DTLS_QUEUE];
    uint8_t datagrams[TANDEM_DTLS_QUEUE][TANDEM_DTLS_DATAGRAM];
};

static void set_error(char *error, size_t length, const char *what) {
    if (!error || length == 0) return;
    unsigned long e = ERR_get_error();
    if (e) {
        char text[200];
        ERR_error_string_n(e, text, sizeof text);
        snprintf(error, length, "%s: %s", what, text);
    } else {
        snprintf(error, length, "%s", what);
    }
    ERR_clear_error();
}

/* The peer's certificate is self-signed; it is checked against the SDP fingerprint after the handshake. */
static int accept_any_certificate(int preverify, X509_STORE_CTX *store) {
    (void)preverify;
    (void)store;
    return 1;
}

/* Retransmission timer: 100 ms first (WebRTC stacks start low), doubling to at most 3 s. */
static unsigned int retransmission_timer(SSL *ssl, unsigned int previous_us) {
    (void)ssl;
    if (previous_us == 0) return 100000;
    unsigned int next = previous_us * 2;
    return next > 3000000 ? 3000000 : next;
}

tandem_dtls_identity *tandem_dtls_identity_generate(const char *common_name, int days, const char *srtp_profiles, char *error, size_t error_length) {
    tandem_dtls_identity *id = calloc(1, sizeof *id);
    if (!id) return NULL;
    EVP_PKEY_CTX *kctx = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
    if (!kctx || EVP_PKEY_keygen_init(kctx) <= 0 || EVP_PKEY_CTX_set_ec_paramgen_curve_nid(kctx, NID_X9_62_prime256v1) <= 0 ||
        EVP_PKEY_keygen(kctx, &id->key) <= 0) {
        set_error(error, error_length, "P-256 key generation");
        EVP_PKEY_CTX_free(kctx);
        tandem_dtls_identity_free(id);
        return NULL;
    }
    EVP_PKEY_CTX_free(kctx);

    X509 *x = X509_new();
    id->certificate = x;
    uint64_t serial;
    RAND_bytes((unsigned char *)&serial, sizeof serial);
    X509_NAME *name = X509_NAME_new();
    if (!x || !name || !X509_set_version(x, 2) || !ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial >> 1) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), -86400) || !X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)common_name, -1, -1, 0) ||
        !X509_set_subject_name(x, name) || !X509_set_issuer_name(x, name) || !X509_set_pubkey(x, id->key) ||
        !X509_sign(x, id->key, EVP_sha256())) {
        set_error(error, error_length, "self-signed certificate");
        X509_NAME_free(name);
        tandem_dtls_identity_free(id);
        return NULL;
    }
    X509_NAME_free(name);

    SSL_CTX *ctx = SSL_CTX_new(DTLS_method());
    id->ctx = ctx;
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION) || SSL_CTX_use_certificate(ctx, x) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, id->key) != 1 || SSL_CTX_check_private_key(ctx) != 1 ||
        SSL_CTX_set_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:"
                                     "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA") != 1 ||
        SSL_CTX_set_tlsext_use_srtp(ctx, srtp_profiles) != 0) {  /* use_srtp returns 0 on success */
        set_error(error, error_length, "DTLS context");
        tandem_dtls_identity_free(id);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, accept_any_certificate);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_options(ctx, SSL_OP_NO_QUERY_MTU | SSL_OP_NO_TICKET);
    return id;
}

void tandem_dtls_identity_free(tandem_dtls_identity *id) {
    if (!id) return;
    SSL_CTX_free(id->ctx);
    X509_free(id->certificate);
    EVP_PKEY_free(id->key);
    free(id);
}

int tandem_dtls_identity_fingerprint_sha256(const tandem_dtls_identity *id, uint8_t *out32) {
    unsigned int n = 0;
    return X509_digest(id->certificate, EVP_sha256(), out32, &n) == 1 && n == 32 ? 0 : -1;
}

/* The outgoing BIO: every write is one datagram, queued. */
static int queue_write(BIO *bio, const char *data, int length) {
    tandem_dtls *d = BIO_get_data(bio);
    if (!d || length < 0) return -1;
    if (d->queued == TANDEM_DTLS_QUEUE || (size_t)length > TANDEM_DTLS_DATAGRAM) return length; /* dropped: retransmission recovers */
    int slot = (d->head + d->queued) % TANDEM_DTLS_QUEUE;
    memcpy(d->datagrams[slot], data, (size_t)length);
    d->lengths[slot] = (size_t)length;
    d->queued++;
    return length;
}

static long queue_ctrl(BIO *bio, int cmd, long num, void *ptr) {
    (void)num;
    (void)ptr;
    tandem_dtls *d = BIO_get_data(bio);
    switch (cmd) {
    case BIO_CTRL_FLUSH: return 1;
    case BIO_CTRL_DGRAM_QUERY_MTU: return d ? d->mtu : 1200;
    case BIO_CTRL_DGRAM_GET_FALLBACK_MTU: return 1200;
    case BIO_CTRL_WPENDING:
    case BIO_CTRL_PENDING: return 0;
    default: return 0;
    }
}

static int queue_create(BIO *bio) {
    BIO_set_init(bio, 1);
    return 1;
}

static BIO_METHOD *shared_method;
static CRYPTO_ONCE method_once = CRYPTO_ONCE_STATIC_INIT;
static void make_method(void) {
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tandem datagram queue");
    BIO_meth_set_write(m, queue_write);
    BIO_meth_set_ctrl(m, queue_ctrl);
    BIO_meth_set_create(m, queue_create);
    shared_method = m;
}

tandem_dtls *tandem_dtls_new(tandem_dtls_identity *id, int is_server, int mtu) {
    if (!CRYPTO_THREAD_run_once(&method_once, make_method) || !shared_method) return NULL;
    tandem_dtls *d = calloc(1, sizeof *d);
    if (!d) return NULL;
    d->mtu = mtu;
    d->ssl = SSL_new(id->ctx);
    d->incoming = BIO_new(BIO_s_mem());
    BIO *outgoing = BIO_new(shared_method);
    if (!d->ssl || !d->incoming || !outgoing) {
        BIO_free(outgoing);
        BIO_free(d->incoming);
        SSL_free(d->ssl);
        free(d);
        return NULL;
    }
    BIO_set_mem_eof_return(d->incoming, -1);
    BIO_set_data(outgoing, d);
    SSL_set_bio(d->ssl, d->incoming, outgoing); /* the SSL owns both BIOs now */
    SSL_set_mtu(d->ssl, mtu);
    DTLS_set_link_mtu(d->ssl, mtu);
    DTLS_set_timer_cb(d->ssl, retransmission_timer);
    if (is_server) SSL_set_accept_state(d->ssl); else SSL_set_connect_state(d->ssl);
    return d;
}

void tandem_dtls_free(tandem_dtls *d) {
    if (!d) return;
    SSL_free(d->ssl);
    free(d);
}

int tandem_dtls_feed(tandem_dtls *d, const uint8_t *data, size_t length) {
    if (length > 65535) return -1;
    return BIO_write(d->incoming, data, (int)length) == (int)length ? 0 : -1;
}

static int failed(tandem_dtls *d, int result) {
    int e = SSL_get_error(d->ssl, result);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
    if (e == SSL_ERROR_ZERO_RETURN) {
        d->peer_closed = 1;
        return -1;
    }
    unsigned long code = ERR_peek_last_error();
    if (code) d->last_error = code;
    ERR_clear_error();
    return -1;
}

int tandem_dtls_handshake(tandem_dtls *d) {
    if (SSL_is_init_finished(d->ssl)) return 1;
    int r = SSL_do_handshake(d->ssl);
    if (r == 1) return 1;
    return failed(d, r);
}

int tandem_dtls_read(tandem_dtls *d, uint8_t *out, size_t capacity) {
    int r = SSL_read(d->ssl, out, capacity > 65535 ? 65535 : (int)capacity);
    if (r > 0) return r;
    return failed(d, r) == 0 ? 0 : -1;
}

int tandem_dtls_next_datagram(tandem_dtls *d, uint8_t *out, size_t capacity) {
    if (d->queued == 0) return 0;
    size_t n = d->lengths[d->head];
    if (n > capacity) return -1;
    memcpy(out, d->datagrams[d->head], n);
    d->head = (d->head + 1) % TANDEM_DTLS_QUEUE;
    d->queued--;
    return (int)n;
}

long tandem_dtls_timeout_ms(tandem_dtls *d) {
    struct timeval tv;
    if (DTLSv1_get_timeout(d->ssl, &tv) != 1) return -1;
    return tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

int tandem_dtls_handle_timeout(tandem_dtls *d) {
    return DTLSv1_handle_timeout(d->ssl) < 0 ? -1 : 0;
}

void tandem_dtls_shutdown(tandem_dtls *d) {
    if (SSL_is_init_finished(d->ssl)) SSL_shutdown(d->ssl);
    ERR_clear_error();
}

int tandem_dtls_peer_closed(tandem_dtls *d) { return d->peer_closed || (SSL_get_shutdown(d->ssl) & SSL_RECEIVED_SHUTDOWN) != 0; }

int tandem_dtls_srtp_profile(tandem_dtls *d) {
    SRTP_PROTECTION_PROFILE *p = SSL_get_selected_srtp_profile(d->ssl);
    return p ? (int)p->id : 0;
}

int tandem_dtls_export_srtp_keying_material(tandem_dtls *d, uint8_t *out, size_t length) {
    static const char label[] = "EXTRACTOR-dtls_srtp";
    return SSL_export_keying_material(d->ssl, out, length, label, sizeof label - 1, NULL, 0, 0) == 1 ? 0 : -1;
}

int tandem_dtls_peer_fingerprint_sha256(tandem_dtls *d, uint8_t *out32) {
    X509 *peer = SSL_get1_peer_certificate(d->ssl);
    if (!peer) return -1;
    unsigned int n = 0;
    int ok = X509_digest(peer, EVP_sha256(), out32, &n) == 1 && n == 32;
    X509_free(peer);
    return ok ? 0 : -1;
}

void tandem_dtls_last_error(tandem_dtls *d, char *out, size_t length) {
    if (length == 0) return;
    out[0] = 0;
    if (d->last_error) ERR_error_string_n(d->last_error, out, length);
}
