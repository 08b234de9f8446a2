// The address types of the configuration are the wire codec's own: `IPAddress` from STUN
// (RFC 8489 §14.1) and `CIDR` from TURN, re-exported so users of TandemKit see one type each.
@_exported import STUN
@_exported import struct TURN.CIDR
