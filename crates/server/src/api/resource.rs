//! A resource of the API registered together with its OpenAPI operations, so that a route is
//! declared once: its path and methods are those of the handler's `#[utoipa::path]`.

use actix_web::dev::{AppService, HttpServiceFactory};
use actix_web::http::header::{HeaderValue, ALLOW};
use actix_web::http::Method;
use actix_web::middleware::from_fn;
use actix_web::{web, FromRequest, Handler, HttpRequest, Responder, ResponseError};
use utoipa::openapi::path::{HttpMethod, Paths};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::RefOr;
use utoipa_actix_web::OpenApiFactory;

use crate::limits;
use crate::problem::ApiError;

/// One path of the API: its routes with their OpenAPI operations, and what wraps them. Any
/// method it has no route for gets a 405 problem with the `Allow` header RFC 9110 requires
/// (actix's own 405 has none).
pub struct Resource {
    resource: actix_web::Resource,
    allow: Vec<Method>,
    paths: Paths,
    schemas: Vec<(String, RefOr<Schema>)>,
    no_body: bool,
}

impl Resource {
    /// The resource of `operation`'s path, answering its method with `handler`.
    pub fn of<Doc, H, Args>(handler: H, operation: Doc) -> Self
    where
        Doc: utoipa::Path + OpenApiFactory,
        H: Handler<Args>,
        Args: FromRequest + 'static,
        H::Output: Responder + 'static,
    {
        Resource {
            resource: web::resource(Doc::path()),
            allow: Vec::new(),
            paths: Paths::new(),
            schemas: Vec::new(),
            no_body: false,
        }
        .and(handler, operation)
    }

    /// Also answers `operation`'s method, on the same path, with `handler`.
    pub fn and<Doc, H, Args>(mut self, handler: H, operation: Doc) -> Self
    where
        Doc: utoipa::Path + OpenApiFactory,
        H: Handler<Args>,
        Args: FromRequest + 'static,
        H::Output: Responder + 'static,
    {
        for method in Doc::methods() {
            let method = actix_method(method);
            self.resource = self
                .resource
                .route(web::method(method.clone()).to(handler.clone()));
            self.allow.push(method);
        }
        self.paths.merge(operation.paths());
        operation.schemas(&mut self.schemas);
        self
    }

    /// Refuses a request with a body (`body_not_allowed`): for the POSTs that take none.
    pub fn no_body(mut self) -> Self {
        self.no_body = true;
        self
    }

    /// Adds data (an extractor's configuration) for this resource's handlers.
    pub fn app_data<U: 'static>(mut self, data: U) -> Self {
        self.resource = self.resource.app_data(data);
        self
    }
}

/// actix's name for an OpenAPI method.
fn actix_method(method: HttpMethod) -> Method {
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Trace => Method::TRACE,
    }
}

impl HttpServiceFactory for Resource {
    fn register(self, config: &mut AppService) {
        let allow: Vec<&str> = self.allow.iter().map(Method::as_str).collect();
        let allow =
            HeaderValue::from_str(&allow.join(", ")).expect("method names are valid header values");
        let resource = self
            .resource
            .default_service(web::to(move |req: HttpRequest| {
                let allow = allow.clone();
                async move {
                    let mut response = ApiError::MethodNotAllowed {
                        method: req.method().to_string(),
                        path: req.path().to_owned(),
                    }
                    .error_response();
                    response.headers_mut().insert(ALLOW, allow);
                    response
                }
            }));
        if self.no_body {
            resource.wrap(from_fn(limits::no_body)).register(config);
        } else {
            resource.register(config);
        }
    }
}

impl OpenApiFactory for Resource {
    fn paths(&self) -> Paths {
        self.paths.clone()
    }

    fn schemas(&self, schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.extend(self.schemas.iter().cloned());
    }
}
