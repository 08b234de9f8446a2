import Foundation
import Store
import TURN

/// TURN REST API credentials (`RESTCredential`, draft-uberti-behave-turn-rest-00 §2.2)
/// from the stored shared secret: what `tandem turn credentials` prints and what the
/// control API will hand to browsers.
public enum TURNCredentials {
    /// Issues a credential signed with the current shared secret of `settings`;
    /// `ttl` defaults to the stored credential TTL. A negative `ttl` gives a credential that
    /// expired `-ttl` seconds before `now` (for testing refusal).
    public static func issue(settings: TURNSettings, user: String?, ttl: Int? = nil, now: Date = Date()) -> RESTCredential {
        let ttl = ttl ?? settings.credentialTTL
        if ttl < 0 {
            return RESTCredential.issue(secret: settings.sharedSecret, user: user, ttl: 0, now: now.addingTimeInterval(TimeInterval(ttl)))
        }
        return RESTCredential.issue(secret: settings.sharedSecret, user: user, ttl: ttl, now: now)
    }
}
