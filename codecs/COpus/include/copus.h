// libopus (Debian's libopus-dev) for Swift: the header, and non-variadic wrappers around
// the variadic opus_encoder_ctl/opus_decoder_ctl requests that Swift cannot call.
#pragma once
#include <opus/opus.h>

int tandem_opus_encoder_set_bitrate(OpusEncoder *encoder, opus_int32 bits_per_second);
int tandem_opus_encoder_set_complexity(OpusEncoder *encoder, opus_int32 complexity);
int tandem_opus_encoder_set_inband_fec(OpusEncoder *encoder, opus_int32 on);
int tandem_opus_encoder_set_packet_loss_percent(OpusEncoder *encoder, opus_int32 percent);
int tandem_opus_encoder_set_dtx(OpusEncoder *encoder, opus_int32 on);
int tandem_opus_encoder_set_signal_voice(OpusEncoder *encoder);
int tandem_opus_encoder_set_max_bandwidth(OpusEncoder *encoder, opus_int32 bandwidth);
int tandem_opus_encoder_get_complexity(OpusEncoder *encoder, opus_int32 *complexity);
int tandem_opus_encoder_get_packet_loss_percent(OpusEncoder *encoder, opus_int32 *percent);
int tandem_opus_encoder_get_bitrate(OpusEncoder *encoder, opus_int32 *bits_per_second);
int tandem_opus_encoder_get_lookahead(OpusEncoder *encoder, opus_int32 *samples);
int tandem_opus_decoder_get_last_packet_duration(OpusDecoder *decoder, opus_int32 *samples);
int tandem_opus_decoder_reset(OpusDecoder *decoder);
