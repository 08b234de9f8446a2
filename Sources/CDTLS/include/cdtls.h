// DTLS 1.2 with the use_srtp extension (RFC 5764) through Debian's OpenSSL 3, behind an
// opaque C interface: no OpenSSL header reaches Swift, so the Swift modules that use it
// can also use swift-crypto/swift-nio-ssl (whose BoringSSL headers clash with OpenSSL's).
//
// Datagrams are handed in with tandem_dtls_feed and the datagrams OpenSSL writes are
// queued one per write (never concatenated), to be taken with tandem_dtls_next_datagram.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef struct tandem_dtls_identity tandem_dtls_identity;
typedef struct tandem_dtls tandem_dtls;

/// A fresh ECDSA P-256 key and a self-signed certificate valid for `days` (subject CN = `common_name`),
/// in a DTLS context offering `srtp_profiles` (e.g. "SRTP_AEAD_AES_128_GCM:SRTP_AES128_CM_SHA1_80").
/// NULL on failure, with the reason in `error`.
tandem_dtls_identity *tandem_dtls_identity_generate(const char *common_name, int days, const char *srtp_profiles, char *error, size_t error_length);
void tandem_dtls_identity_free(tandem_dtls_identity *identity);
/// SHA-256 of the DER certificate (32 bytes).
int tandem_dtls_identity_fingerprint_sha256(const tandem_dtls_identity *identity, uint8_t *out32);

/// A DTLS endpoint on `identity`: server (waits for ClientHello) or client; `mtu` bounds every datagram it writes.
tandem_dtls *tandem_dtls_new(tandem_dtls_identity *identity, int is_server, int mtu);
void tandem_dtls_free(tandem_dtls *dtls);

/// Hands one received datagram to OpenSSL. 0, or -1 when it cannot be buffered.
int tandem_dtls_feed(tandem_dtls *dtls, const uint8_t *data, size_t length);
/// Drives the handshake: 1 complete, 0 in progress (datagrams may be queued), -1 failed.
int tandem_dtls_handshake(tandem_dtls *dtls);
/// Reads application data after the handshake: bytes read, 0 none, -1 failed or closed by the peer.
int tandem_dtls_read(tandem_dtls *dtls, uint8_t *out, size_t capacity);
/// Takes the next queued outgoing datagram: its length (0 when none; -1 when `capacity` is too small).
int tandem_dtls_next_datagram(tandem_dtls *dtls, uint8_t *out, size_t capacity);
/// Milliseconds until the retransmission timer fires, or -1 when none runs.
long tandem_dtls_timeout_ms(tandem_dtls *dtls);
/// Fires the retransmission timer (queues the flight again). 0 ok, -1 failed (too many retransmissions).
int tandem_dtls_handle_timeout(tandem_dtls *dtls);
/// Queues a close_notify alert.
void tandem_dtls_shutdown(tandem_dtls *dtls);
/// 1 when the peer sent close_notify.
int tandem_dtls_peer_closed(tandem_dtls *dtls);

/// The negotiated SRTP protection profile id (RFC 5764 §4.1.2: 1 = AES128_CM_HMAC_SHA1_80,
/// 7 = AEAD_AES_128_GCM), 0 when none.
int tandem_dtls_srtp_profile(tandem_dtls *dtls);
/// Exports `length` bytes of "EXTRACTOR-dtls_srtp" keying material (RFC 5764 §4.2). 0 ok, -1 failed.
int tandem_dtls_export_srtp_keying_material(tandem_dtls *dtls, uint8_t *out, size_t length);
/// SHA-256 of the peer's DER certificate (32 bytes). 0 ok, -1 no certificate.
int tandem_dtls_peer_fingerprint_sha256(tandem_dtls *dtls, uint8_t *out32);
/// The last OpenSSL error as text (empty when none).
void tandem_dtls_last_error(tandem_dtls *dtls, char *out, size_t length);

// AES-128-GCM for SRTP/SRTCP (RFC 7714) and AES-128 counter mode for the SRTP key
// derivation (RFC 3711 §4.3.3), on OpenSSL's EVP: one context per key and direction,
// reused for every packet (only the IV changes), in place, no allocation per packet.
typedef struct tandem_aes_gcm tandem_aes_gcm;

/// A context for `key` (16 bytes) that seals (encrypt = 1) or opens (encrypt = 0). NULL on failure.
tandem_aes_gcm *tandem_aes_gcm_new(const uint8_t *key16, int encrypt);
void tandem_aes_gcm_free(tandem_aes_gcm *gcm);
/// Encrypts `length` bytes at `data` in place, authenticating `aad` too; writes the 16-byte tag. 0 ok, -1 failed.
int tandem_aes_gcm_seal(tandem_aes_gcm *gcm, const uint8_t *iv12, const uint8_t *aad, size_t aad_length, uint8_t *data, size_t length, uint8_t *tag16);
/// Verifies the 16-byte tag over `aad` and the `length` bytes at `data` and decrypts them in place. 0 ok, -1 not authentic.
int tandem_aes_gcm_open(tandem_aes_gcm *gcm, const uint8_t *iv12, const uint8_t *aad, size_t aad_length, uint8_t *data, size_t length, const uint8_t *tag16);
/// The first `length` bytes of the AES-128 counter-mode keystream from `iv16` under `key16`. 0 ok, -1 failed.
int tandem_aes_cm_keystream(const uint8_t *key16, const uint8_t *iv16, uint8_t *out, size_t length);
