import Hummingbird

/// Adds defensive headers to every response, errors included: no MIME sniffing, no
/// framing, no referrer, no caching, a restrictive CSP, and HSTS (RFC 6797) when the
/// listener is HTTPS.
public struct SecurityHeadersMiddleware<Context: RequestContext>: RouterMiddleware {
    let headers: HTTPFields

    public init(strictTransportSecurity: Bool) {
        var headers = HTTPFields()
        headers[.xContentTypeOptions] = "nosniff"
        headers[.init("X-Frame-Options")!] = "DENY"
        headers[.init("Referrer-Policy")!] = "no-referrer"
        headers[.contentSecurityPolicy] = "default-src 'none'; frame-ancestors 'none'"
        headers[.cacheControl] = "no-store"
        if strictTransportSecurity {
            headers[.strictTransportSecurity] = "max-age=31536000"
        }
        self.headers = headers
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as any HTTPResponseError {
            response = try error.response(from: request, context: context)
        }
        for field in headers where response.headers[field.name] == nil {
            response.headers[field.name] = field.value
        }
        return response
    }
}
