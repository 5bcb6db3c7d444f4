//! The KAS simulator serves only what I_Attachment_Service 2.4 defines: every route, method
//! and status in its table exists in `shared/spec/kim15/openapi/AttachmentService.yaml`
//! (parsed with yaml-rust2), and its base path is the yaml's `servers` URL; the same for
//! getLimits against AccountLimit.yaml.

use std::path::{Path, PathBuf};

use komle_conformance::kas_sim::routes::{
    ACCOUNT_LIMIT_BASE_PATH, BASE_PATH, GET_LIMITS, ROUTES, allowed_status, route,
};
use yaml_rust2::{Yaml, YamlLoader};

fn yaml() -> Yaml {
    load("AttachmentService.yaml")
}

fn load(name: &str) -> Yaml {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let path: PathBuf = manifest
        .ancestors()
        .map(|a| a.join("shared/spec/kim15/openapi").join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} not found above {}", manifest.display()));
    let text = std::fs::read_to_string(&path).expect("readable");
    YamlLoader::load_from_str(&text)
        .expect("the yaml parses")
        .pop()
        .expect("one document")
}

#[test]
fn every_route_method_and_status_served_exists_in_attachment_service_yaml() {
    let doc = yaml();
    assert_eq!(doc["info"]["version"].as_str(), Some("2.4.0"));
    assert_eq!(
        doc["servers"][0]["url"].as_str(),
        Some(format!("{BASE_PATH}/").as_str())
    );
    for r in ROUTES {
        let op = &doc["paths"][r.path][r.method];
        assert!(!op.is_badvalue(), "{} {} in the yaml", r.method, r.path);
        let responses = op["responses"].as_hash().expect("responses");
        for status in r.statuses {
            assert!(
                responses.contains_key(&Yaml::Integer(i64::from(*status))),
                "{} {} answers {status}, the yaml lists {:?}",
                r.method,
                r.path,
                responses.keys().collect::<Vec<_>>()
            );
        }
        // The fallback for a status outside the table is itself in the table.
        assert!(r.statuses.contains(&allowed_status(r, 418)));
    }
    // And every operation of the yaml is served.
    let paths = doc["paths"].as_hash().expect("paths");
    let mut operations = 0;
    for (path, ops) in paths {
        for (method, _) in ops.as_hash().expect("operations") {
            let (path, method) = (
                path.as_str().expect("path"),
                method.as_str().expect("method"),
            );
            assert!(
                ROUTES.iter().any(|r| r.path == path && r.method == method),
                "{method} {path} not served"
            );
            operations += 1;
        }
    }
    assert_eq!(operations, ROUTES.len());
}

#[test]
fn requests_are_matched_to_the_yaml_operations() {
    let id = "a566f001-7fa6-4f87-a088-7def2d609c87";
    let p = |s: &str| format!("{BASE_PATH}{s}");
    assert_eq!(
        route("POST", &p("/attachment/")).map(|x| x.0.method),
        Some("post")
    );
    for (m, op) in [("GET", "get"), ("HEAD", "head"), ("DELETE", "delete")] {
        let (r, got) = route(m, &p(&format!("/attachment/{id}"))).expect("matched");
        assert_eq!((r.method, got.as_deref()), (op, Some(id)));
    }
    assert!(route("PUT", &p(&format!("/attachment/{id}"))).is_none());
    assert!(route("GET", &p("/attachment/")).is_none());
    assert!(route("GET", &format!("/attachments/v2.3/attachment/{id}")).is_none());
    assert!(route("GET", &p(&format!("/attachment/{id}/x"))).is_none());
}

#[test]
fn a_22416_get_limits_route_and_statuses_exist_in_account_limit_yaml() {
    let doc = load("AccountLimit.yaml");
    assert_eq!(
        doc["servers"][0]["url"].as_str(),
        Some(format!("{ACCOUNT_LIMIT_BASE_PATH}/").as_str())
    );
    let op = &doc["paths"][GET_LIMITS.path][GET_LIMITS.method];
    assert_eq!(op["operationId"].as_str(), Some("getLimits"));
    let responses = op["responses"].as_hash().expect("responses");
    for status in GET_LIMITS.statuses {
        assert!(
            responses.contains_key(&Yaml::Integer(i64::from(*status))),
            "{status}"
        );
    }
    let schema = doc["components"]["schemas"]["AccountLimit"]["properties"]
        .as_hash()
        .expect("AccountLimit");
    for member in ["dataTimeToLive", "maxMailSize", "quota", "remainQuota"] {
        assert!(
            schema.contains_key(&Yaml::String(member.into())),
            "{member}"
        );
    }
    assert_eq!(
        route("GET", &format!("{ACCOUNT_LIMIT_BASE_PATH}/limit")).map(|r| r.0),
        Some(GET_LIMITS)
    );
    assert!(route("POST", &format!("{ACCOUNT_LIMIT_BASE_PATH}/limit")).is_none());
}
