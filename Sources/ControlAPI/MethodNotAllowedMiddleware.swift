import Hummingbird

/// Answers a request for a known path with a method the path does not serve with 405 and
/// `Allow` (RFC 9110 §15.5.6), whatever the method (TRACE, QUERY, …), instead of the
/// router's 404. HEAD counts as GET; OPTIONS goes on (CORS preflights are answered before).
struct MethodNotAllowedMiddleware<Context: RequestContext>: RouterMiddleware {
    /// Path patterns (`{name}` matches one segment) and their methods.
    let routes: [(segments: [Substring], methods: [HTTPRequest.Method], allow: String)]

    init(routes: [(path: String, methods: [HTTPRequest.Method])]) {
        self.routes = routes.map { ($0.path.split(separator: "/"), $0.methods, $0.methods.map(\.rawValue).joined(separator: ", ")) }
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let method = request.method == .head ? .get : request.method
        guard method != .options else { return try await next(request, context) }
        let segments = request.uri.path.split(separator: "/")
        for route in routes where Self.matches(segments, route.segments) {
            guard route.methods.contains(method) else {
                var response = Response(status: .methodNotAllowed, headers: [.contentType: "text/plain; charset=utf-8", .allow: route.allow],
                                        body: .init(byteBuffer: .init(string: "\(request.uri.path) allows \(route.allow)\n")))
                response.headers[.allow] = route.allow
                return response
            }
            break
        }
        return try await next(request, context)
    }

    static func matches(_ path: [Substring], _ pattern: [Substring]) -> Bool {
        path.count == pattern.count && zip(path, pattern).allSatisfy { $1.hasPrefix("{") || $0 == $1 }
    }
}
