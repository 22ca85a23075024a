//! Builds the application from typed settings. `main` and the tests call the
//! same `Application::build`, so tests exercise the real server.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::{DefaultHeaders, Logger};
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::auth::Authenticator;
use crate::billing::Ingestor;
use crate::config::{DatabaseSettings, Settings};
use crate::routes;
use crate::store::{OrgCache, Store};
use crate::stripe::StripeClient;
use crate::stripe::webhook::WebhookVerifier;

/// What handlers share: one instance per process, behind `web::Data`.
pub struct AppState {
    pub store: Store,
    /// Organizations with a customer, briefly, for the portal's hot path.
    pub orgs: OrgCache,
    pub stripe: StripeClient,
    /// `{PUBLIC_URL}/organization#/plans`, computed once at startup.
    pub plans_url: String,
    pub portal_configuration: Option<String>,
    /// `None` when no webhook secret is configured.
    pub webhooks: Option<WebhookVerifier>,
    pub ingestor: Ingestor,
}

pub struct Application {
    port: u16,
    server: Server,
    store: Store,
}

impl Application {
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        let store = connect_and_migrate(&settings.database).await?;
        let authenticator = web::Data::new(Authenticator::from_settings(&settings.auth)?);
        let state = web::Data::new(AppState {
            store: store.clone(),
            orgs: OrgCache::default(),
            stripe: StripeClient::new(&settings.stripe)
                .context("could not build the Stripe client")?,
            plans_url: settings.server.plans_url(),
            portal_configuration: settings.stripe.portal_configuration.clone(),
            webhooks: settings
                .webhooks
                .as_ref()
                .map(|w| WebhookVerifier::new(w.secrets.clone(), w.tolerance.as_secs() as i64)),
            ingestor: Ingestor::for_store(store.clone()),
        });
        let listener = TcpListener::bind(settings.server.bind_addr)
            .with_context(|| format!("could not listen on {}", settings.server.bind_addr))?;
        let port = listener.local_addr()?.port();
        let mut server = HttpServer::new(move || {
            App::new()
                .wrap(Logger::new("%a \"%r\" %s %b %Dms"))
                .wrap(DefaultHeaders::new().add(("X-Content-Type-Options", "nosniff")))
                .app_data(state.clone())
                .app_data(authenticator.clone())
                .configure(routes::configure)
        })
        .listen(listener)?;
        if let Some(workers) = settings.server.workers {
            server = server.workers(workers);
        }
        log::info!(
            "lance-billing listening on {} ({} database)",
            settings.server.bind_addr.ip().to_string() + ":" + &port.to_string(),
            store.backend_name()
        );
        Ok(Self {
            port,
            server: server.run(),
            store,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        self.store.close().await;
        result
    }
}

pub async fn connect_and_migrate(settings: &DatabaseSettings) -> anyhow::Result<Store> {
    let store = Store::connect(settings)
        .await
        .context("could not connect to the database (check DATABASE_URL)")?;
    store
        .migrate()
        .await
        .context("could not apply database migrations")?;
    Ok(store)
}
