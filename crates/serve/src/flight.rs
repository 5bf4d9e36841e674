//! The Arrow Flight SQL service.

use crate::auth::{new_token, Users};
use crate::limits::{Limits, Refused};
use arrow::datatypes::SchemaRef;
use arrow::ipc::writer::IpcWriteOptions;
use arrow::record_batch::RecordBatch;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, ProstMessageExt, SqlInfo, TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use base64::Engine;
use crmcube_cube::{Cube, CubeModel, Warehouse};
use crmcube_model::{Error, Result};
use datafusion::execution::context::SQLOptions;
use futures::{Stream, TryStreamExt};
use prost::Message;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::RwLock;
use tonic::metadata::MetadataValue;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status, Streaming};

/// How to serve.
pub struct ServeOptions {
    /// The warehouse folder.
    pub warehouse: PathBuf,
    /// The cube model (for the wide views).
    pub model: CubeModel,
    /// Address to listen on (port 0: any free port).
    pub addr: SocketAddr,
    /// Who may connect; None: anyone (only allowed on a loopback address).
    pub users: Option<Users>,
    /// TLS certificate chain and private key (PEM).
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// Queries running at once; more wait (up to the timeout).
    pub max_concurrent: usize,
    /// Longest a query may wait for a slot plus run.
    pub query_timeout: Duration,
    /// Memory limit of query execution (DataFusion memory pool), bytes.
    pub memory_limit: Option<u64>,
    /// Address of the PostgreSQL wire endpoint (None: not served).
    pub pg_addr: Option<SocketAddr>,
    /// PostgreSQL connections open at once; more are closed at once.
    pub max_connections: usize,
}

/// One warehouse version opened for queries.
struct Session {
    wh: Warehouse,
    version: Option<u64>,
}

struct State {
    warehouse: PathBuf,
    model: CubeModel,
    users: Option<Users>,
    memory_limit: Option<u64>,
    limits: Limits,
    current: RwLock<Arc<Session>>,
    tokens: Mutex<HashMap<String, String>>,
    sql_info: SqlInfoData,
}

type Stream2 =
    Pin<Box<dyn Stream<Item = std::result::Result<arrow_flight::FlightData, Status>> + Send>>;

/// The Flight SQL service.
#[derive(Clone)]
pub struct Service {
    state: Arc<State>,
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

async fn open_session(
    state_warehouse: &std::path::Path,
    model: &CubeModel,
    memory_limit: Option<u64>,
) -> Result<Session> {
    let wh = Warehouse::open(state_warehouse).await?;
    if let Some(bytes) = memory_limit {
        wh.sql(&format!(
            "SET datafusion.runtime.memory_limit = '{}K'",
            bytes.div_ceil(1024)
        ))
        .await?;
    }
    register_cube(model, &wh, wh.context()).await?;
    // Internal tables (`_quarantine`, raw `_src_*` rows, `_preagg_*`) are not served; the
    // saved queries have already been computed with the pre-aggregations.
    for t in wh.tables() {
        if is_internal(&t.name) {
            let _ = wh.context().deregister_table(t.name.as_str());
        }
    }
    Ok(Session {
        version: wh.version(),
        wh,
    })
}

impl Service {
    /// The session over the newest warehouse version (opened anew after a commit).
    async fn session(&self) -> std::result::Result<Arc<Session>, Status> {
        let latest = crmcube_store::log::latest_version(&self.state.warehouse).map_err(internal)?;
        {
            let s = self.state.current.read().await;
            if s.version == latest {
                return Ok(s.clone());
            }
        }
        let mut s = self.state.current.write().await;
        if s.version != latest {
            let fresh = open_session(
                &self.state.warehouse,
                &self.state.model,
                self.state.memory_limit,
            )
            .await
            .map_err(internal)?;
            *s = Arc::new(fresh);
        }
        Ok(s.clone())
    }

    fn check<T>(&self, req: &Request<T>) -> std::result::Result<(), Status> {
        let Some(users) = &self.state.users else {
            return Ok(());
        };
        let header = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| Status::unauthenticated("log in first (user and password)"))?;
        if let Some(token) = header.strip_prefix("Bearer ") {
            let tokens = self.state.tokens.lock().map_err(internal)?;
            if tokens.contains_key(token.trim()) {
                return Ok(());
            }
            return Err(Status::unauthenticated("unknown or expired session token"));
        }
        if let Some((user, password)) = basic(header) {
            if users.check(&user, &password) {
                return Ok(());
            }
        }
        Err(Status::unauthenticated("wrong user or password"))
    }

    fn sql_options() -> SQLOptions {
        SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
    }

    /// The schema of a query's result, without running it.
    async fn plan_schema(&self, sql: &str) -> std::result::Result<SchemaRef, Status> {
        let session = self.session().await?;
        let df = session
            .wh
            .context()
            .sql_with_options(sql, Self::sql_options())
            .await
            .map_err(|e| Status::invalid_argument(one_line(&e.to_string())))?;
        Ok(Arc::new(df.schema().as_arrow().clone()))
    }

    /// Runs a query within the limits.
    async fn run(&self, sql: &str) -> std::result::Result<(SchemaRef, Vec<RecordBatch>), Status> {
        let (permit, left) = self.state.limits.slot().await.map_err(|r| match r {
            Refused::Busy(message) => Status::resource_exhausted(message),
            Refused::ShuttingDown => Status::unavailable("the server is shutting down"),
        })?;
        let session = self.session().await?;
        let ctx = session.wh.context().clone();
        let sql = sql.to_string();
        let work = async move {
            let df = ctx
                .sql_with_options(&sql, Self::sql_options())
                .await
                .map_err(|e| Status::invalid_argument(one_line(&e.to_string())))?;
            let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
            let batches = df.collect().await.map_err(|e| {
                let text = one_line(&e.to_string());
                if text.contains("Resources exhausted") {
                    Status::resource_exhausted(format!(
                        "query needs more memory than the server allows: {text}"
                    ))
                } else {
                    Status::invalid_argument(text)
                }
            })?;
            Ok::<_, Status>((schema, batches))
        };
        // Its own task: the timer fires on another worker even while an operator keeps
        // this one busy, and aborting drops the plan (its streams and spawned tasks stop
        // at their next yield point).
        let task = tokio::spawn(work);
        let abort = task.abort_handle();
        let out = match tokio::time::timeout(left, task).await {
            Ok(joined) => joined.map_err(|e| Status::internal(format!("query failed: {e}")))?,
            Err(_) => {
                abort.abort();
                return Err(Status::deadline_exceeded(self.state.limits.stopped()));
            }
        };
        drop(permit);
        out
    }

    fn stream(schema: SchemaRef, batches: Vec<RecordBatch>) -> Stream2 {
        let stream = FlightDataEncoderBuilder::new()
            .with_schema(schema)
            .build(futures::stream::iter(batches.into_iter().map(Ok)))
            .map_err(Status::from);
        Box::pin(stream)
    }

    fn info(
        schema: &arrow::datatypes::Schema,
        ticket: Vec<u8>,
        descriptor: FlightDescriptor,
    ) -> std::result::Result<FlightInfo, Status> {
        let endpoint = FlightEndpoint::new().with_ticket(Ticket::new(ticket));
        Ok(FlightInfo::new()
            .try_with_schema(schema)
            .map_err(internal)?
            .with_endpoint(endpoint)
            .with_descriptor(descriptor))
    }

    /// The answer to a catalog request (`schema` of its rows): checked, and a ticket that
    /// replays the request itself.
    fn metadata_info(
        &self,
        schema: &arrow::datatypes::Schema,
        command: &impl ProstMessageExt,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let ticket = command.as_any().encode_to_vec();
        Ok(Response::new(Self::info(
            schema,
            ticket,
            request.into_inner(),
        )?))
    }

    /// The one column of the table-types listing.
    fn table_types_schema() -> SchemaRef {
        Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("table_type", arrow::datatypes::DataType::Utf8, false),
        ]))
    }

    /// Every table and view: (catalog, schema, name, type, columns).
    async fn objects(
        &self,
    ) -> std::result::Result<Vec<(String, String, String, &'static str, SchemaRef)>, Status> {
        let session = self.session().await?;
        let ctx = session.wh.context();
        let mut out = Vec::new();
        for catalog_name in ctx.catalog_names() {
            let Some(catalog) = ctx.catalog(&catalog_name) else {
                continue;
            };
            for schema_name in catalog.schema_names() {
                let Some(schema) = catalog.schema(&schema_name) else {
                    continue;
                };
                for table_name in schema.table_names() {
                    let Ok(Some(t)) = schema.table(&table_name).await else {
                        continue;
                    };
                    let kind = match t.table_type() {
                        datafusion::datasource::TableType::View => "VIEW",
                        _ => "TABLE",
                    };
                    out.push((
                        catalog_name.clone(),
                        schema_name.clone(),
                        table_name,
                        kind,
                        t.schema(),
                    ));
                }
            }
        }
        out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        Ok(out)
    }
}

/// `Basic base64(user:password)` → (user, password). The padding is optional: Go's Flight
/// client (behind the ADBC driver) encodes without it.
fn basic(header: &str) -> Option<(String, String)> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    let encoded = header.strip_prefix("Basic ")?;
    let bytes = LENIENT.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

fn one_line(s: &str) -> String {
    s.lines().map(str::trim).collect::<Vec<_>>().join(" ")
}

fn sql_info() -> Result<SqlInfoData> {
    let mut b = SqlInfoDataBuilder::new();
    b.append(SqlInfo::FlightSqlServerName, "crmcube");
    b.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    b.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    b.append(SqlInfo::FlightSqlServerReadOnly, true);
    b.append(SqlInfo::FlightSqlServerSql, true);
    b.append(SqlInfo::FlightSqlServerSubstrait, false);
    b.append(SqlInfo::FlightSqlServerTransaction, 0i32);
    b.append(SqlInfo::FlightSqlServerCancel, false);
    b.build().map_err(|e| Error::format("Flight SQL info", e))
}

#[tonic::async_trait]
impl FlightSqlService for Service {
    type FlightService = Service;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> std::result::Result<
        Response<
            Pin<Box<dyn Stream<Item = std::result::Result<HandshakeResponse, Status>> + Send>>,
        >,
        Status,
    > {
        let user = match &self.state.users {
            None => "anonymous".to_string(),
            Some(users) => {
                let header = request
                    .metadata()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .ok_or_else(|| Status::unauthenticated("log in with a user and password"))?;
                let (user, password) = basic(header)
                    .ok_or_else(|| Status::unauthenticated("expected Basic authentication"))?;
                if !users.check(&user, &password) {
                    return Err(Status::unauthenticated("wrong user or password"));
                }
                user
            }
        };
        let token = new_token().map_err(internal)?;
        self.state
            .tokens
            .lock()
            .map_err(internal)?
            .insert(token.clone(), user);
        let out = futures::stream::iter(vec![Ok(HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        })]);
        let mut response: Response<Pin<Box<dyn Stream<Item = _> + Send>>> =
            Response::new(Box::pin(out));
        let value = MetadataValue::try_from(format!("Bearer {token}")).map_err(internal)?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let schema = self.plan_schema(&query.query).await?;
        let ticket = TicketStatementQuery {
            statement_handle: query.query.clone().into_bytes().into(),
        };
        let info = Self::info(
            &schema,
            ticket.as_any().encode_to_vec(),
            request.into_inner(),
        )?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let sql = std::str::from_utf8(&ticket.statement_handle)
            .map_err(|_| Status::invalid_argument("the statement handle is not UTF-8"))?;
        let (schema, batches) = self.run(sql).await?;
        Ok(Response::new(Self::stream(schema, batches)))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> std::result::Result<ActionCreatePreparedStatementResult, Status> {
        self.check(&request)?;
        let schema = self.plan_schema(&query.query).await?;
        let IpcMessage(schema_bytes) = SchemaAsIpc::new(&schema, &IpcWriteOptions::default())
            .try_into()
            .map_err(internal)?;
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: query.query.into_bytes().into(),
            dataset_schema: schema_bytes,
            parameter_schema: Default::default(),
        })
    }

    async fn do_action_close_prepared_statement(
        &self,
        _query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> std::result::Result<(), Status> {
        // Handles are the statements themselves: nothing is held per statement.
        self.check(&request)
    }

    async fn get_flight_info_prepared_statement(
        &self,
        cmd: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.check(&request)?;
        let sql = std::str::from_utf8(&cmd.prepared_statement_handle)
            .map_err(|_| Status::invalid_argument("the statement handle is not UTF-8"))?;
        let schema = self.plan_schema(sql).await?;
        let info = Self::info(&schema, cmd.as_any().encode_to_vec(), request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_get_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let sql = std::str::from_utf8(&query.prepared_statement_handle)
            .map_err(|_| Status::invalid_argument("the statement handle is not UTF-8"))?;
        let (schema, batches) = self.run(sql).await?;
        Ok(Response::new(Self::stream(schema, batches)))
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.into_builder().schema();
        self.metadata_info(&schema, &query, request)
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let mut names: Vec<String> = self.objects().await?.into_iter().map(|o| o.0).collect();
        names.dedup();
        let mut b = query.into_builder();
        for n in names {
            b.append(n);
        }
        let schema = b.schema();
        let batch = b.build().map_err(internal)?;
        Ok(Response::new(Self::stream(schema, vec![batch])))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(&schema, &query, request)
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let mut pairs: Vec<(String, String)> = self
            .objects()
            .await?
            .into_iter()
            .map(|o| (o.0, o.1))
            .collect();
        pairs.dedup();
        let mut b = query.into_builder();
        for (c, s) in pairs {
            b.append(c, s);
        }
        let schema = b.schema();
        let batch = b.build().map_err(internal)?;
        Ok(Response::new(Self::stream(schema, vec![batch])))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder().schema();
        self.metadata_info(&schema, &query, request)
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let objects = self.objects().await?;
        let mut b = query.into_builder();
        for (c, s, t, kind, schema) in &objects {
            b.append(c, s, t, *kind, schema).map_err(internal)?;
        }
        let schema = b.schema();
        let batch = b.build().map_err(internal)?;
        Ok(Response::new(Self::stream(schema, vec![batch])))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        self.metadata_info(&Self::table_types_schema(), &query, request)
    }

    async fn do_get_table_types(
        &self,
        _query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let schema = Self::table_types_schema();
        let values = arrow::array::StringArray::from(vec!["TABLE", "VIEW"]);
        let batch =
            RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).map_err(internal)?;
        Ok(Response::new(Self::stream(schema, vec![batch])))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> std::result::Result<Response<FlightInfo>, Status> {
        let schema = query.clone().into_builder(&self.state.sql_info).schema();
        self.metadata_info(&schema, &query, request)
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> std::result::Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.check(&request)?;
        let b = query.into_builder(&self.state.sql_info);
        let schema = b.schema();
        let batch = b.build().map_err(internal)?;
        Ok(Response::new(Self::stream(schema, vec![batch])))
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// What the server serves, for the start-up line.
pub struct Started {
    /// The address listened on.
    pub addr: SocketAddr,
    /// The PostgreSQL address listened on.
    pub pg_addr: Option<SocketAddr>,
    /// Warehouse version at start.
    pub version: Option<u64>,
    /// Tables and views clients see.
    pub tables: usize,
}

/// Serves until SIGINT or SIGTERM. `ready` is called once the port is bound.
pub async fn serve(opts: ServeOptions, ready: impl FnOnce(&Started)) -> Result<()> {
    if opts.users.is_none() && !opts.addr.ip().is_loopback() {
        return Err(Error::Usage(format!(
            "{}: serving without authentication is only allowed on a loopback address",
            opts.addr
        )));
    }
    if opts.users.as_ref().is_some_and(|u| u.is_empty()) {
        return Err(Error::Usage(format!(
            "no users: give --auth-file FILE or set {} (and {}); see `crmcube serve --help`",
            crate::auth::PASSWORD_ENV,
            crate::auth::USER_ENV
        )));
    }
    let session = open_session(&opts.warehouse, &opts.model, opts.memory_limit).await?;
    let listener = tokio::net::TcpListener::bind(opts.addr)
        .await
        .map_err(|e| Error::Usage(format!("cannot listen on {}: {e}", opts.addr)))?;
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Usage(e.to_string()))?;
    let service = Service {
        state: Arc::new(State {
            warehouse: opts.warehouse.clone(),
            model: opts.model,
            users: opts.users,
            memory_limit: opts.memory_limit,
            limits: Limits::new(opts.max_concurrent, opts.query_timeout),
            current: RwLock::new(Arc::new(session)),
            tokens: Mutex::new(HashMap::new()),
            sql_info: sql_info()?,
        }),
    };
    let tables = service.objects().await.map(|o| o.len()).unwrap_or(0);
    let version = service.state.current.read().await.version;
    // PostgreSQL: its own session (with pg_catalog), refreshed in place after loads.
    let mut pg_tasks = Vec::new();
    let mut pg_addr = None;
    if let Some(a) = opts.pg_addr {
        let session =
            open_session(&opts.warehouse, &service.state.model, opts.memory_limit).await?;
        let ctx = Arc::new(session.wh.context().clone());
        crate::pg::prepare(&ctx)?;
        let listener = tokio::net::TcpListener::bind(a)
            .await
            .map_err(|e| Error::Usage(format!("cannot listen on {a}: {e}")))?;
        pg_addr = Some(
            listener
                .local_addr()
                .map_err(|e| Error::Usage(e.to_string()))?,
        );
        let tls = match &opts.tls {
            Some((cert, key)) => Some(crate::pg::tls_acceptor(cert, key)?),
            None => None,
        };
        pg_tasks.push(tokio::spawn(crate::pg::accept(
            listener,
            ctx.clone(),
            service.state.users.clone(),
            tls,
            opts.max_connections,
            service.state.limits.clone(),
        )));
        pg_tasks.push(tokio::spawn(keep_fresh(
            ctx,
            service.state.clone(),
            session.version,
        )));
    }
    ready(&Started {
        addr,
        pg_addr,
        version,
        tables,
    });
    let mut builder = Server::builder();
    if let Some((cert, key)) = &opts.tls {
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .map_err(|e| Error::Usage(format!("TLS: {e}")))?;
    }
    builder
        .add_service(FlightServiceServer::new(service))
        // No Nagle: a Flight SQL query is several small request/response exchanges, each
        // otherwise held back by the peer's delayed ACK (about 40 ms a round trip).
        .serve_with_incoming_shutdown(
            TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown_signal(),
        )
        .await
        .map_err(|e| Error::Usage(format!("server stopped: {e}")))?;
    for t in pg_tasks {
        t.abort();
    }
    Ok(())
}

/// Re-registers the tables of each new warehouse version in `ctx` (and recreates the
/// views over them), checking every two seconds.
async fn keep_fresh(
    ctx: Arc<datafusion::prelude::SessionContext>,
    state: Arc<State>,
    mut version: Option<u64>,
) {
    loop {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let Ok(latest) = crmcube_store::log::latest_version(&state.warehouse) else {
            continue;
        };
        if latest == version {
            continue;
        }
        if refresh(&ctx, &state).await.is_ok() {
            version = latest;
        }
    }
}

async fn refresh(ctx: &datafusion::prelude::SessionContext, state: &State) -> Result<()> {
    let wh = Warehouse::open(&state.warehouse).await?;
    for t in wh.tables().iter().filter(|t| !is_internal(&t.name)) {
        let provider = wh
            .context()
            .table_provider(t.name.as_str())
            .await
            .map_err(|e| Error::Query(e.to_string()))?;
        let _ = ctx.deregister_table(t.name.as_str());
        ctx.register_table(t.name.as_str(), provider)
            .map_err(|e| Error::Query(e.to_string()))?;
    }
    register_cube(&state.model, &wh, ctx).await
}

/// Tables the warehouse keeps for itself (names starting with `_`), never served.
fn is_internal(name: &str) -> bool {
    name.starts_with('_')
}

/// Creates the cube's views in `ctx` (which has the tables of `wh` registered): the wide
/// `cube_<fact>` views, and the saved queries' results, computed on `wh` with its
/// pre-aggregations. A view the warehouse cannot make is left out, said on stderr.
async fn register_cube(
    model: &CubeModel,
    wh: &Warehouse,
    ctx: &datafusion::prelude::SessionContext,
) -> Result<()> {
    let mut cube = Cube::open(model.clone(), wh.context()).await?;
    cube.use_pre_aggregations(wh).await?;
    let (_, mut skipped) = cube.register_views(ctx).await?;
    let (saved, skipped_saved) = cube.register_saved_queries(wh.context()).await?;
    skipped.extend(skipped_saved);
    if !std::ptr::eq(ctx, wh.context()) {
        for name in &saved {
            let provider = wh
                .context()
                .table_provider(name.as_str())
                .await
                .map_err(|e| Error::Query(e.to_string()))?;
            let _ = ctx.deregister_table(name.as_str());
            ctx.register_table(name.as_str(), provider)
                .map_err(|e| Error::Query(e.to_string()))?;
        }
    }
    for s in skipped {
        let version = wh
            .version()
            .map_or_else(|| "-".to_string(), |v| v.to_string());
        eprintln!("crmcube serve: view not offered (warehouse version {version}): {s}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::basic;

    #[test]
    fn basic_credentials_decode_with_or_without_padding() {
        // "analyst:pw" is 10 bytes: padded "YW5hbHlzdDpwdw==", unpadded as Go sends it.
        let want = Some(("analyst".to_string(), "pw".to_string()));
        assert_eq!(basic("Basic YW5hbHlzdDpwdw=="), want);
        assert_eq!(basic("Basic YW5hbHlzdDpwdw"), want);
        assert_eq!(basic("Bearer YW5hbHlzdDpwdw"), None);
        assert_eq!(basic("Basic !!!"), None);
    }
}
