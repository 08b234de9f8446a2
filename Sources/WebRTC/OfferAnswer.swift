import SDP

/// The audio codecs the WebRTC leg speaks (RFC 7587 Opus, RFC 3551 PCMU/PCMA).
public enum AudioCodec: String, Sendable, Hashable, CaseIterable {
    case opus, pcmu, pcma

    /// Encoding name in rtpmap.
    public var encodingName: String {
        switch self {
        case .opus: "opus"
        case .pcmu: "PCMU"
        case .pcma: "PCMA"
        }
    }

    /// RTP clock rate (Opus is always 48000, RFC 7587 §4.1).
    public var clockRate: UInt32 { self == .opus ? 48000 : 8000 }
    public var channels: Int? { self == .opus ? 2 : nil }
    public var staticPayloadType: UInt8? {
        switch self {
        case .pcmu: 0
        case .pcma: 8
        case .opus: nil
        }
    }
}

/// What one side negotiated for the audio of a WebRTC leg.
public struct NegotiatedAudio: Sendable, Equatable {
    public var mid: String?
    public var codec: AudioCodec
    public var payloadType: UInt8
    /// RFC 4733 telephone-event, when both sides have it: at the codec's clock rate where
    /// offered, else at the rate the peer has (Firefox offers only telephone-event/8000 beside
    /// Opus at 48 kHz).
    public var telephoneEventPayloadType: UInt8?
    /// The clock of the telephone-event payload type (RFC 4733 §2.1).
    public var telephoneEventClockRate: UInt32
    /// Our direction toward the peer.
    public var direction: Direction
    /// The peer's ICE credentials.
    public var remoteICE: ICECredentials
    /// The peer's certificate fingerprints (SHA-256).
    public var remoteFingerprints: [[UInt8]]
    /// Our DTLS role.
    public var dtlsRole: DTLSTransport.Role
    /// The peer's media SSRCs (from a=ssrc), if it announced them.
    public var remoteSSRCs: [UInt32]
    /// The peer's candidates as signalled (a lite agent learns addresses from checks anyway).
    public var remoteCandidates: [ICECandidate]
}

/// Why an offer or answer could not be used.
public enum OfferAnswerError: Error, Sendable, Equatable, CustomStringConvertible {
    case noAudio
    case noCommonCodec
    case missingICECredentials
    case missingFingerprint
    case rtcpMuxRequired
    case notSecure(proto: String)
    case answerDoesNotMatchOffer(String)

    public var description: String {
        switch self {
        case .noAudio: "the offer has no audio section"
        case .noCommonCodec: "no codec in common (Tandem speaks Opus, PCMU, PCMA)"
        case .missingICECredentials: "no ice-ufrag/ice-pwd"
        case .missingFingerprint: "no sha-256 fingerprint"
        case .rtcpMuxRequired: "rtcp-mux is required"
        case .notSecure(let proto): "media profile \(proto) is not DTLS-SRTP"
        case .answerDoesNotMatchOffer(let why): "answer does not match the offer: \(why)"
        }
    }
}

/// This side of a WebRTC leg as SDP presents it: ICE credentials, the DTLS fingerprint, host
/// candidates (ICE-lite, RFC 8445 §5.1.1.1), an SSRC and the codec policy.
public struct LocalMediaParameters: Sendable {
    public var ice: ICECredentials
    public var fingerprintSHA256: [UInt8]
    /// Advertised addresses ("IP" text) and the leg's port; the first goes into c= and m=.
    public var addresses: [String]
    public var port: UInt16
    public var ssrc: UInt32
    public var cname: String
    /// Codecs in Tandem's order of preference, for offers. In answers the offerer's order wins
    /// (RFC 3264 §6.1) unless `preferPassThrough` picks G.711 whenever the browser offers it.
    public var codecs: [AudioCodec] = [.opus, .pcmu, .pcma]
    public var preferPassThrough = false
    /// Opus parameters (RFC 7587 §6): in-band FEC, and narrowband capture/playback — the SIP side is 8 kHz,
    /// so the browser need not encode more (its decoder's cost drops by about 3×).
    public var opusParameters = "minptime=10;useinbandfec=1;maxplaybackrate=8000;sprop-maxcapturerate=8000"
    public var sessionID: UInt64 = UInt64.random(in: 1...(1 << 62))
    public var sessionVersion: UInt64 = 1

    public init(ice: ICECredentials, fingerprintSHA256: [UInt8], addresses: [String], port: UInt16, ssrc: UInt32 = UInt32.random(in: 1...UInt32.max), cname: String = "tandem") {
        self.ice = ice
        self.fingerprintSHA256 = fingerprintSHA256
        self.addresses = addresses
        self.port = port
        self.ssrc = ssrc
        self.cname = cname
    }

    var addressType: String { addresses.first?.contains(":") == true ? "IP6" : "IP4" }

    func candidates() -> [Attribute] {
        var out: [Attribute] = []
        for (i, address) in addresses.enumerated() {
            // Host candidates: type preference 126, local preference by order (RFC 8445 §5.1.2.1).
            let priority = UInt32(126) << 24 | UInt32(65535 - i) << 8 | 255
            let c = ICECandidate(foundation: "\(i + 1)", priority: priority, address: address, port: port, kind: .host)
            out.append(Attribute("candidate", c.value))
        }
        out.append(Attribute("end-of-candidates"))
        return out
    }
}

/// Offer/answer for the browser leg (RFC 8829 JSEP as an ICE-lite, rtcp-mux, BUNDLE-aware
/// answerer and offerer, RFC 3264): one audio section is used; every other section is
/// rejected with port 0 and kept in place, never dropped.
public enum WebRTCOfferAnswer {
    /// The telephone-event payload type of a section and its clock: the one at the codec's
    /// rate when there is one, else the first offered (RFC 4733 §7.1.1 lets the rate differ).
    static func telephoneEvent(in section: MediaDescription, codecClockRate: UInt32) -> (UInt8?, UInt32) {
        let events = section.payloadTypes.compactMap { pt -> (UInt8, UInt32)? in
            guard let map = section.rtpMap(of: pt), map.encodingName.lowercased() == "telephone-event" else { return nil }
            return (pt, map.clockRate)
        }
        guard let chosen = events.first(where: { $0.1 == codecClockRate }) ?? events.first else { return (nil, codecClockRate) }
        return chosen
    }

    /// Answers a browser's offer.
    public static func answer(_ offer: SessionDescription, local: LocalMediaParameters) throws(OfferAnswerError) -> (answer: SessionDescription, audio: NegotiatedAudio) {
        guard let index = offer.media.firstIndex(where: { $0.media == "audio" && $0.port != 0 }) else { throw .noAudio }
        let offered = offer.media[index]
        guard offered.proto.uppercased().contains("SAVP"), offered.proto.uppercased().contains("TLS") else { throw .notSecure(proto: offered.proto) }
        guard offered.isRTCPMultiplexed else { throw .rtcpMuxRequired }
        guard let credentials = offer.iceCredentials(of: offered) else { throw .missingICECredentials }
        let fingerprints = offer.fingerprints(of: offered).filter { $0.hashFunction == "sha-256" }.map(\.bytes)
        guard !fingerprints.isEmpty else { throw .missingFingerprint }

        // Codec: the offerer's order (RFC 3264 §6.1), or G.711 first when pass-through is preferred.
        var choices: [(AudioCodec, UInt8)] = []
        for pt in offered.payloadTypes {
            guard let map = offered.rtpMap(of: pt) else { continue }
            if let codec = local.codecs.first(where: { map.matches($0.encodingName, clockRate: $0.clockRate) }) { choices.append((codec, pt)) }
        }
        if local.preferPassThrough, let g711 = choices.first(where: { $0.0 != .opus }) { choices.insert(g711, at: 0) }
        guard let (codec, payloadType) = choices.first else { throw .noCommonCodec }
        let (telephoneEvent, eventClock) = Self.telephoneEvent(in: offered, codecClockRate: codec.clockRate)

        let remoteSetup = offered.setup ?? offer.setup ?? .actpass
        // An ICE-lite gateway takes the passive side when it may: the browser starts DTLS once ICE is up.
        let role: DTLSTransport.Role = remoteSetup == .passive ? .client : .server
        let direction = offer.direction(of: offered).answer()

        var answer = SessionDescription(origin: .init(username: "tandem", sessionID: String(local.sessionID), sessionVersion: local.sessionVersion, addressType: local.addressType, address: local.addresses.first ?? "0.0.0.0"))
        answer.attributes.append(Attribute("ice-lite"))
        var bundled: [String] = []
        for (i, m) in offer.media.enumerated() {
            if i == index {
                var formats = [String(payloadType)]
                if let telephoneEvent { formats.append(String(telephoneEvent)) }
                var section = MediaDescription(media: "audio", port: local.port, proto: offered.proto, formats: formats,
                                               connection: .init(addressType: local.addressType, address: local.addresses.first ?? "0.0.0.0"))
                if let mid = m.mid { section.append("mid", mid); bundled.append(mid) }
                section.attributes += [Attribute("ice-ufrag", local.ice.usernameFragment), Attribute("ice-pwd", local.ice.password)]
                section.append("fingerprint", Fingerprint(hashFunction: "sha-256", bytes: local.fingerprintSHA256).value)
                section.append("setup", role == .server ? SetupRole.passive.rawValue : SetupRole.active.rawValue)
                section.append(direction.rawValue)
                section.append("rtcp-mux")
                section.append("rtpmap", RTPMap(payloadType: payloadType, encodingName: codec.encodingName, clockRate: codec.clockRate, channels: codec.channels).value)
                if codec == .opus { section.append("fmtp", FormatParameters(payloadType: payloadType, text: local.opusParameters).value) }
                if let telephoneEvent {
                    section.append("rtpmap", RTPMap(payloadType: telephoneEvent, encodingName: "telephone-event", clockRate: eventClock).value)
                    section.append("fmtp", "\(telephoneEvent) 0-16")
                }
                if direction.sends {
                    section.append("msid", "tandem audio")
                    section.append("ssrc", SSRCAttribute(ssrc: local.ssrc, name: "cname", value: local.cname).text)
                }
                section.attributes += local.candidates()
                answer.media.append(section)
            } else {
                answer.media.append(rejected(m))
            }
        }
        if offer.groups.contains(where: { $0.semantics == "BUNDLE" }), !bundled.isEmpty {
            answer.attributes.insert(Attribute("group", Group(semantics: "BUNDLE", mids: bundled).value), at: 0)
        }
        answer.attributes.append(Attribute("msid-semantic", " WMS tandem"))
        let audio = NegotiatedAudio(mid: offered.mid, codec: codec, payloadType: payloadType, telephoneEventPayloadType: telephoneEvent,
                                    telephoneEventClockRate: eventClock, direction: direction,
                                    remoteICE: ICECredentials(usernameFragment: credentials.usernameFragment, password: credentials.password),
                                    remoteFingerprints: fingerprints, dtlsRole: role, remoteSSRCs: offered.ssrcs, remoteCandidates: offered.candidates)
        return (answer, audio)
    }

    /// An offer toward a browser (for calls that arrive from SIP): one audio section with the
    /// local codecs and telephone-event at 48000 and 8000 Hz, `a=setup:actpass`.
    public static func offer(local: LocalMediaParameters, direction: Direction = .sendrecv) -> SessionDescription {
        var offer = SessionDescription(origin: .init(username: "tandem", sessionID: String(local.sessionID), sessionVersion: local.sessionVersion, addressType: local.addressType, address: local.addresses.first ?? "0.0.0.0"))
        offer.attributes = [Attribute("group", "BUNDLE 0"), Attribute("ice-lite"), Attribute("msid-semantic", " WMS tandem")]
        var dynamic: UInt8 = 111
        var formats: [String] = []
        var maps: [Attribute] = []
        for codec in local.codecs {
            let pt = codec.staticPayloadType ?? dynamic
            if codec.staticPayloadType == nil { dynamic += 1 }
            formats.append(String(pt))
            maps.append(Attribute("rtpmap", RTPMap(payloadType: pt, encodingName: codec.encodingName, clockRate: codec.clockRate, channels: codec.channels).value))
            if codec == .opus { maps.append(Attribute("fmtp", "\(pt) \(local.opusParameters)")) }
        }
        for (pt, rate): (UInt8, UInt32) in [(126, 48000), (101, 8000)] {
            formats.append(String(pt))
            maps.append(Attribute("rtpmap", "\(pt) telephone-event/\(rate)"))
            maps.append(Attribute("fmtp", "\(pt) 0-16"))
        }
        var section = MediaDescription(media: "audio", port: local.port, proto: "UDP/TLS/RTP/SAVPF", formats: formats,
                                       connection: .init(addressType: local.addressType, address: local.addresses.first ?? "0.0.0.0"))
        section.attributes = [Attribute("mid", "0"), Attribute("ice-ufrag", local.ice.usernameFragment), Attribute("ice-pwd", local.ice.password),
                              Attribute("fingerprint", Fingerprint(hashFunction: "sha-256", bytes: local.fingerprintSHA256).value),
                              Attribute("setup", SetupRole.actpass.rawValue), Attribute(direction.rawValue), Attribute("rtcp-mux")] + maps
        if direction.sends {
            section.append("msid", "tandem audio")
            section.append("ssrc", SSRCAttribute(ssrc: local.ssrc, name: "cname", value: local.cname).text)
        }
        section.attributes += local.candidates()
        offer.media = [section]
        return offer
    }

    /// Applies the browser's answer to an ``offer(local:direction:)``.
    public static func apply(answer: SessionDescription, to offer: SessionDescription) throws(OfferAnswerError) -> NegotiatedAudio {
        guard let offered = offer.media.first(where: { $0.media == "audio" }) else { throw .noAudio }
        guard let answered = answer.media.first(where: { $0.media == "audio" && ($0.mid == nil || $0.mid == offered.mid) }), answered.port != 0 else { throw .noAudio }
        guard answered.isRTCPMultiplexed else { throw .rtcpMuxRequired }
        guard let credentials = answer.iceCredentials(of: answered) else { throw .missingICECredentials }
        let fingerprints = answer.fingerprints(of: answered).filter { $0.hashFunction == "sha-256" }.map(\.bytes)
        guard !fingerprints.isEmpty else { throw .missingFingerprint }
        guard let payloadType = answered.payloadTypes.first(where: { pt in
            guard let map = answered.rtpMap(of: pt) else { return false }
            return !map.matches("telephone-event", clockRate: map.clockRate) && offered.payloadTypes.contains(pt)
        }), let map = answered.rtpMap(of: payloadType), let codec = AudioCodec.allCases.first(where: { map.matches($0.encodingName, clockRate: $0.clockRate) })
        else { throw .noCommonCodec }
        let (telephoneEvent, eventClock) = Self.telephoneEvent(in: answered, codecClockRate: codec.clockRate)
        let setup = answered.setup ?? answer.setup
        let role: DTLSTransport.Role
        switch setup {
        case .active?: role = .server
        case .passive?: role = .client
        default: throw .answerDoesNotMatchOffer("a=setup must be active or passive in an answer")
        }
        let direction = answer.direction(of: answered).answer()
        return NegotiatedAudio(mid: answered.mid, codec: codec, payloadType: payloadType, telephoneEventPayloadType: telephoneEvent,
                               telephoneEventClockRate: eventClock, direction: direction,
                               remoteICE: ICECredentials(usernameFragment: credentials.usernameFragment, password: credentials.password),
                               remoteFingerprints: fingerprints, dtlsRole: role, remoteSSRCs: answered.ssrcs, remoteCandidates: answered.candidates)
    }

    static func rejected(_ m: MediaDescription) -> MediaDescription {
        var section = MediaDescription(media: m.media, port: 0, proto: m.proto, formats: m.formats.isEmpty ? ["0"] : [m.formats[0]])
        if let mid = m.mid { section.append("mid", mid) }
        section.append("inactive")
        return section
    }
}
