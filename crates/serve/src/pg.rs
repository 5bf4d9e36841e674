//! The PostgreSQL wire protocol endpoint (for BI tools, psql, psycopg, JDBC/ODBC
//! PostgreSQL drivers), on the same tables and views as Flight SQL.
//!
//! Query handling and the `pg_catalog` tables BI tools read on connect come from
//! `datafusion-postgres`; crmcube adds password authentication against its own users
//! (cleartext password exchange, so TLS is required of every client once the server has
//! a certificate), a read-only guard, a connection limit, and the query limits Flight SQL
//! has: the same slots for queries running at once and the same per-query timeout
//! (waiting for a slot, planning, running and sending the rows).

use crate::auth::Users;
use crate::limits::{Limits, Refused};
use async_trait::async_trait;
use crmcube_model::{Error, Result};
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{SetExpr, Statement};
use datafusion_postgres::hooks::cursor::CursorStatementHook;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::hooks::HookClient;
use datafusion_postgres::pgwire::api::auth::{
    finish_authentication, protocol_negotiation, save_startup_parameters_to_metadata,
    DefaultServerParameterProvider, LoginInfo, StartupHandler,
};
use datafusion_postgres::pgwire::api::portal::Portal;
use datafusion_postgres::pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use datafusion_postgres::pgwire::api::results::Response;
use datafusion_postgres::pgwire::api::store::PortalStore;
use datafusion_postgres::pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers,
};
use datafusion_postgres::pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::extendedquery::Execute;
use datafusion_postgres::pgwire::messages::simplequery::Query;
use datafusion_postgres::pgwire::messages::startup::Authentication;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use datafusion_postgres::pgwire::tokio::{process_socket, TlsAcceptor};
use datafusion_postgres::{DfSessionService, QueryHook};
use futures::{Sink, SinkExt};
use std::fmt::Debug;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Statements a read-only endpoint accepts: queries and the session chatter clients
/// send (SET, SHOW, transactions, cursors).
const ALLOWED: &[&str] = &[
    "SELECT",
    "WITH",
    "VALUES",
    "EXPLAIN",
    "SHOW",
    "SET",
    "RESET",
    "BEGIN",
    "START",
    "COMMIT",
    "ROLLBACK",
    "END",
    "ABORT",
    "DECLARE",
    "FETCH",
    "CLOSE",
    "DISCARD",
    "DEALLOCATE",
    "(",
];

fn refusal(statement: &Statement) -> Option<PgWireError> {
    let text = statement.to_string();
    let first = text
        .split(|c: char| c.is_whitespace())
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    let first = if first.starts_with('(') {
        "(".to_string()
    } else {
        first
    };
    let select_into = matches!(statement, Statement::Query(q)
        if matches!(q.body.as_ref(), SetExpr::Select(s) if s.into.is_some()));
    // The session is shared by every PostgreSQL client: a `SET datafusion.…` would change
    // the server's settings (memory limit included) for all of them.
    let server_setting = matches!(first.as_str(), "SET" | "RESET")
        && text.to_ascii_lowercase().contains("datafusion.");
    if server_setting {
        return Some(PgWireError::UserError(Box::new(ErrorInfo::new(
            "ERROR".into(),
            "42501".into(), // insufficient_privilege
            "crmcube serve: the server's datafusion.* settings are not allowed to change \
             (they are shared by every client; set them when starting `crmcube serve`)"
                .into(),
        ))));
    }
    if ALLOWED.contains(&first.as_str()) && !select_into {
        return None;
    }
    Some(PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".into(),
        "25006".into(), // read_only_sql_transaction
        format!("crmcube serve is read-only: {first} statements are not allowed"),
    ))))
}

/// Refuses writes and DDL before they are planned.
#[derive(Debug)]
struct ReadOnly;

#[async_trait]
impl QueryHook for ReadOnly {
    async fn handle_simple_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal(statement).map(Err)
    }

    async fn handle_extended_parse_query(
        &self,
        statement: &Statement,
        _session_context: &SessionContext,
        _client: &(dyn ClientInfo + Send + Sync),
    ) -> Option<PgWireResult<LogicalPlan>> {
        refusal(statement).map(Err)
    }

    async fn handle_extended_query(
        &self,
        statement: &Statement,
        _logical_plan: &LogicalPlan,
        _params: &ParamValues,
        _session_context: &SessionContext,
        _client: &mut dyn HookClient,
    ) -> Option<PgWireResult<Response>> {
        refusal(statement).map(Err)
    }
}

fn user_error(severity: &str, code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        severity.into(),
        code.into(),
        message,
    )))
}

/// Queries through `datafusion-postgres`, each within the server's limits: it waits for a
/// slot (up to the timeout), then runs and sends its rows in what is left of the
/// timeout. Past it the query's stream is dropped (its DataFusion tasks stop at their
/// next yield point) and the client gets SQLSTATE 57014, as for PostgreSQL's own
/// `statement_timeout`; the connection stays usable.
struct Limited {
    inner: Arc<DfSessionService>,
    limits: Limits,
}

impl Limited {
    async fn within<F, T>(&self, work: F) -> PgWireResult<T>
    where
        F: std::future::Future<Output = PgWireResult<T>>,
    {
        let (permit, left) = self.limits.slot().await.map_err(|r| match r {
            Refused::Busy(message) => user_error("ERROR", "53000", message), // insufficient_resources
            Refused::ShuttingDown => {
                user_error("ERROR", "57P01", "the server is shutting down".into())
                // admin_shutdown
            }
        })?;
        let out = match tokio::time::timeout(left, work).await {
            Ok(r) => r,
            Err(_) => Err(user_error(
                "ERROR",
                "57014", // query_canceled
                format!("canceling statement: {}", self.limits.stopped()),
            )),
        };
        drop(permit);
        out
    }
}

#[async_trait]
impl SimpleQueryHandler for Limited {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.within(self._on_query(client, query)).await
    }

    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        SimpleQueryHandler::do_query(self.inner.as_ref(), client, query).await
    }
}

type DfStatement = <DfSessionService as ExtendedQueryHandler>::Statement;

#[async_trait]
impl ExtendedQueryHandler for Limited {
    type Statement = DfStatement;
    type QueryParser = <DfSessionService as ExtendedQueryHandler>::QueryParser;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        self.inner.query_parser()
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.within(self._on_execute(client, message)).await
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<Self::Statement>,
        max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        ExtendedQueryHandler::do_query(self.inner.as_ref(), client, portal, max_rows).await
    }
}

/// Password check at connection start (cleartext exchange; TLS protects it on the wire).
/// With `require_tls`, a client that did not negotiate TLS is refused before it sends
/// its password.
struct Login {
    users: Option<Users>,
    require_tls: bool,
    parameters: DefaultServerParameterProvider,
}

#[async_trait]
impl StartupHandler for Login {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                if self.require_tls && !client.is_secure() {
                    return Err(user_error(
                        "FATAL",
                        "28000", // invalid_authorization_specification
                        "crmcube serve requires TLS: connect with sslmode=require \
                         (or verify-full with the server's certificate)"
                            .into(),
                    ));
                }
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.users.is_none() {
                    finish_authentication(client, &self.parameters).await?;
                    return Ok(());
                }
                client.set_state(PgWireConnectionState::AuthenticationInProgress);
                client
                    .send(PgWireBackendMessage::Authentication(
                        Authentication::CleartextPassword,
                    ))
                    .await?;
            }
            PgWireFrontendMessage::PasswordMessageFamily(pwd) => {
                let pwd = pwd.into_password()?;
                let user = LoginInfo::from_client_info(client)
                    .user()
                    .unwrap_or_default()
                    .to_string();
                match &self.users {
                    Some(users) if users.check(&user, &pwd.password) => {
                        finish_authentication(client, &self.parameters).await?;
                    }
                    _ => return Err(PgWireError::InvalidPassword(user)),
                }
            }
            _ => {}
        }
        Ok(())
    }
}

struct Handlers {
    service: Arc<Limited>,
    login: Arc<Login>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.service.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.login.clone()
    }
}

/// A TLS acceptor from PEM certificate chain and key.
pub(crate) fn tls_acceptor(cert: &[u8], key: &[u8]) -> Result<TlsAcceptor> {
    use datafusion_postgres::pgwire::tokio::tokio_rustls::rustls;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let certs: Vec<CertificateDer> = CertificateDer::pem_slice_iter(cert)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::Usage(format!("--tls-cert: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Usage(
            "--tls-cert: no certificate in the file".into(),
        ));
    }
    let key =
        PrivateKeyDer::from_pem_slice(key).map_err(|e| Error::Usage(format!("--tls-key: {e}")))?;
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Usage(format!("TLS: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Prepares `ctx` for PostgreSQL clients (the `pg_catalog` schema and functions).
pub(crate) fn prepare(ctx: &SessionContext) -> Result<()> {
    datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog(
        ctx,
        "datafusion",
        datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider,
    )
    .map_err(|e| Error::Usage(format!("pg_catalog: {e}")))
}

/// Accepts PostgreSQL connections on `listener` until the task is dropped.
pub(crate) async fn accept(
    listener: TcpListener,
    ctx: Arc<SessionContext>,
    users: Option<Users>,
    tls: Option<TlsAcceptor>,
    max_connections: usize,
    limits: Limits,
) {
    let hooks: Vec<Arc<dyn QueryHook>> = vec![
        Arc::new(ReadOnly),
        Arc::new(CursorStatementHook),
        Arc::new(SetShowHook),
        Arc::new(TransactionStatementHook),
    ];
    let handlers = Arc::new(Handlers {
        service: Arc::new(Limited {
            inner: Arc::new(DfSessionService::new_with_hooks(ctx, hooks)),
            limits,
        }),
        login: Arc::new(Login {
            users,
            require_tls: tls.is_some(),
            parameters: DefaultServerParameterProvider::default(),
        }),
    });
    let limiter = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        let Ok((socket, _)) = listener.accept().await else {
            continue;
        };
        // Over the limit the connection is closed at once; the client sees the refusal.
        let Ok(permit) = limiter.clone().try_acquire_owned() else {
            drop(socket);
            continue;
        };
        let handlers = handlers.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _ = process_socket(socket, tls, handlers).await;
            drop(permit);
        });
    }
}
