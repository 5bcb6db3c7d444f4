//! The routes of I_Attachment_Service 2.4 the simulator serves, with every status each may
//! answer. The dispatcher never lets another status out (see [`allowed_status`]), and a test
//! checks this table against AttachmentService.yaml.

/// The `servers` URL of AttachmentService.yaml 2.4 (the base path the TXT record announces).
pub const BASE_PATH: &str = "/attachments/v2.4";

/// One operation: method (lower case, as in the yaml), path template, statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub method: &'static str,
    pub path: &'static str,
    pub statuses: &'static [u16],
}

pub const ADD: Route = Route {
    method: "post",
    path: "/attachment/",
    statuses: &[201, 400, 401, 413, 500, 507],
};
pub const READ: Route = Route {
    method: "get",
    path: "/attachment/{attachmentId}",
    statuses: &[200, 400, 403, 404, 429, 500],
};
pub const HEAD: Route = Route {
    method: "head",
    path: "/attachment/{attachmentId}",
    statuses: &[200, 404],
};
pub const DELETE: Route = Route {
    method: "delete",
    path: "/attachment/{attachmentId}",
    statuses: &[200, 400, 401, 404, 500],
};

/// Every route of AttachmentService.yaml served.
pub const ROUTES: [Route; 4] = [ADD, READ, HEAD, DELETE];

/// The `servers` URL of AccountLimit.yaml (the account manager's getLimits, A_22416).
pub const ACCOUNT_LIMIT_BASE_PATH: &str = "/AccountLimit/v1.1";

pub const GET_LIMITS: Route = Route {
    method: "get",
    path: "/limit",
    statuses: &[200, 401, 404, 500],
};

/// Matches a request to a route; returns the route and the `attachmentId` if any.
pub fn route(method: &str, path: &str) -> Option<(Route, Option<String>)> {
    if path.strip_prefix(ACCOUNT_LIMIT_BASE_PATH) == Some(GET_LIMITS.path) {
        return (method == "GET").then_some((GET_LIMITS, None));
    }
    let rest = path.strip_prefix(BASE_PATH)?;
    if rest == "/attachment/" || rest == "/attachment" {
        return method.eq_ignore_ascii_case("POST").then_some((ADD, None));
    }
    let id = rest.strip_prefix("/attachment/")?;
    if id.is_empty() || id.contains('/') || id.contains('?') {
        return None;
    }
    let r = match method {
        "GET" => READ,
        "HEAD" => HEAD,
        "DELETE" => DELETE,
        _ => return None,
    };
    Some((r, Some(id.to_owned())))
}

/// `status` if the route may answer it, else the route's generic failure (500, or 404 for
/// HEAD which has no 500 in the yaml).
pub fn allowed_status(route: Route, status: u16) -> u16 {
    if route.statuses.contains(&status) {
        status
    } else if route.statuses.contains(&500) {
        500
    } else {
        404
    }
}
