import Hummingbird

/// Cross-origin access (the Fetch standard's CORS protocol) for `/api/v1` and `/webkit` only,
/// from the configured origins: a web page on such an origin may call them, with the
/// Authorization and Content-Type headers. Preflights (OPTIONS with
/// Access-Control-Request-Method) are answered here with 204. Other paths, `/cms` and
/// `/oauth/token` among them, never get CORS headers; nor does any origin not listed.
public struct CORSMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Origins as browsers send them (`https://app.example.com`); `*` allows any.
    public let allowedOrigins: Set<String>
    public static var paths: [String] { ["/api/v1/", "/webkit/"] }

    public init(allowedOrigins: [String]) {
        self.allowedOrigins = Set(allowedOrigins)
    }

    func allows(_ origin: String) -> Bool { allowedOrigins.contains("*") || allowedOrigins.contains(origin) }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let path = request.uri.path
        guard let origin = request.headers[.origin], Self.paths.contains(where: { path.hasPrefix($0) || path + "/" == $0 }), allows(origin) else {
            return try await next(request, context)
        }
        var response: Response
        if request.method == .options, request.headers[.accessControlRequestMethod] != nil {
            response = Response(status: .noContent)
            response.headers[.accessControlAllowMethods] = "GET, POST, DELETE, OPTIONS"
            response.headers[.accessControlAllowHeaders] = "Authorization, Content-Type"
            response.headers[.accessControlMaxAge] = "600"
        } else {
            do {
                response = try await next(request, context)
            } catch let error as any HTTPResponseError {
                // Errors carry the header too, or the page sees a CORS failure instead of the status.
                response = try error.response(from: request, context: context)
            }
        }
        response.headers[.accessControlAllowOrigin] = allowedOrigins.contains("*") ? "*" : origin
        if !allowedOrigins.contains("*") { response.headers[.vary] = "Origin" }
        return response
    }
}
