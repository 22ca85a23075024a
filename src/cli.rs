//! The command line: `serve` (default), `migrate`, operator and development commands.

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};

use crate::auth::dev::{DevKey, DevTokenRequest};
use crate::billing::replay::{Selection, replay};
use crate::billing::{catchup, members, reconcile, snapshot, webhook_setup};
use crate::clerk::api::ClerkApi;
use crate::config::{
    AuthSettings, ClerkApiSettings, DatabaseSettings, Env, SeatSettings, Settings, StripeSettings,
};
use crate::doctor;
use crate::domain::{OrgId, StripeCustomerId, UserId};
use crate::server::{Application, connect_and_migrate};
use crate::store::{LinkOutcome, Store};
use crate::stripe::StripeClient;

#[derive(Debug, Parser)]
#[command(
    name = "lance-billing",
    version,
    about = "Billing for lance: Stripe portal, webhook sync and billing pages"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default when no command is given).
    Serve,
    /// Apply database migrations, then exit.
    Migrate,
    /// Operator commands for organizations.
    Org {
        #[command(subcommand)]
        command: OrgCommand,
    },
    /// Fetch customers, subscriptions, invoices, payment methods and the
    /// catalog from Stripe and apply them: repairs what webhooks missed.
    Sync {
        /// Only this organization's customer (the catalog is skipped).
        #[arg(long)]
        org: Option<OrgId>,
    },
    /// Stripe events: catch up through the Events API, replay stored ones.
    Events {
        #[command(subcommand)]
        command: EventsCommand,
    },
    /// Take today's revenue snapshot for the admin chart (the server takes it
    /// daily), and estimate again the month-ends not taken on the day.
    Snapshot,
    /// Check this deployment: configuration, database, Stripe key and
    /// resources, webhook endpoint, Customer Portal, Clerk's keys. Changes
    /// nothing; exits non-zero when a check fails.
    Doctor,
    /// Clerk: backfill what its webhooks tell.
    Clerk {
        #[command(subcommand)]
        command: ClerkCommand,
    },
    /// The Stripe webhook endpoint.
    Webhooks {
        #[command(subcommand)]
        command: WebhooksCommand,
    },
    /// Development helpers (never needed in production).
    Dev {
        #[command(subcommand)]
        command: DevCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Attach an existing Stripe customer to an organization.
    Link {
        /// Clerk organization id (org_…); the row is created if missing.
        #[arg(long)]
        org: OrgId,
        /// Stripe customer id (cus_…).
        #[arg(long)]
        customer: StripeCustomerId,
        /// Replace the organization's current customer instead of refusing.
        #[arg(long)]
        replace: bool,
        /// Do not check the customer with Stripe first.
        #[arg(long)]
        no_verify: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClerkCommand {
    /// Fetch every organization and its members from Clerk's Backend API
    /// (with CLERK_SECRET_KEY) and apply them as the webhooks would.
    Sync,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Create the endpoint at URL subscribed to exactly the events this
    /// service handles, at STRIPE_API_VERSION, and print its signing secret;
    /// or bring the endpoint already at URL up to date. Safe to run again.
    Setup {
        /// https://{host}/api/v1/webhooks/stripe
        #[arg(long)]
        url: url::Url,
        /// Create another endpoint even if one exists at URL (to roll the API version).
        #[arg(long)]
        new: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum EventsCommand {
    /// Fetch events no webhook delivered from Stripe's Events API (kept 30
    /// days) and apply them like webhooks; resumes from a stored cursor.
    CatchUp {
        /// Look back this far instead of resuming from the cursor (e.g. 72h, 7d).
        #[arg(long, value_parser = parse_look_back)]
        since: Option<std::time::Duration>,
    },
    /// Re-apply stored events (safe: an applied event changes nothing again).
    Replay {
        /// Every event that was recorded but could not be applied.
        #[arg(long, conflicts_with = "id", required_unless_present = "id")]
        failed: bool,
        /// One event by id (evt_…).
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Print a session token signed by the local development key.
    /// The server trusts it only when started with DEV_AUTH=true.
    Token {
        /// User id to sign in as.
        #[arg(long, default_value = "user_dev")]
        user: String,
        /// Active organization (omit for a user without one).
        #[arg(long)]
        org: Option<OrgId>,
        /// Organization role, e.g. admin or member.
        #[arg(long, default_value = "admin")]
        role: String,
        /// Organization slug.
        #[arg(long)]
        slug: Option<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: i64,
    },
}

pub async fn run(cli: Cli, env: &Env) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(env).await,
        Command::Migrate => {
            let settings = DatabaseSettings::from_env(env)?;
            connect_and_migrate(&settings).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Org {
            command:
                OrgCommand::Link {
                    org,
                    customer,
                    replace,
                    no_verify,
                },
        } => {
            let store = connect_and_migrate(&DatabaseSettings::from_env(env)?).await?;
            let stripe = if no_verify {
                None
            } else {
                stripe_if_configured(env)?
            };
            let message = link_org(&store, stripe.as_ref(), &org, &customer, replace).await?;
            println!("{message}");
            build_plans_documents(&store).await
        }
        Command::Sync { org } => {
            let store = connect_and_migrate(&DatabaseSettings::from_env(env)?).await?;
            let stripe = StripeClient::new(&StripeSettings::from_env(env)?)?;
            let report = reconcile::sync(&store, &stripe, org.as_ref()).await?;
            for line in report.lines() {
                println!("{line}");
            }
            println!("{report}");
            build_plans_documents(&store).await?;
            match report.unreadable().as_slice() {
                [] => Ok(()),
                unreadable => bail!(
                    "could not read {} from Stripe (everything else was applied)",
                    unreadable.join(", ")
                ),
            }
        }
        Command::Events {
            command: EventsCommand::CatchUp { since },
        } => {
            let store = connect_and_migrate(&DatabaseSettings::from_env(env)?).await?;
            let stripe = StripeClient::new(&StripeSettings::from_env(env)?)?;
            let report = catchup::catch_up(&store, &stripe, since).await?;
            println!("{report}");
            build_plans_documents(&store).await
        }
        Command::Doctor => {
            let checks = doctor::run(env).await;
            for check in &checks {
                println!("{check}");
            }
            let failed = checks
                .iter()
                .filter(|c| c.verdict == doctor::Verdict::Failed)
                .count();
            if failed > 0 {
                bail!("{failed} check(s) failed");
            }
            Ok(())
        }
        Command::Clerk {
            command: ClerkCommand::Sync,
        } => {
            let store = connect_and_migrate(&DatabaseSettings::from_env(env)?).await?;
            let clerk = ClerkApi::new(&ClerkApiSettings::from_env(env)?)?;
            let seats = SeatSettings::from_env(env)?;
            let report =
                members::sync_from_clerk(&store, &clerk, members::CLERK_PAGE, &seats).await?;
            println!("{report}");
            build_plans_documents(&store).await?;
            if report.unreadable.is_empty() {
                Ok(())
            } else {
                bail!("some of Clerk could not be read (everything else was applied)")
            }
        }
        Command::Snapshot => {
            let store = connect_and_migrate(&DatabaseSettings::from_env(env)?).await?;
            let taken = snapshot::take(&store, crate::domain::unix_now()).await?;
            println!(
                "snapshot: {} row(s) for today, {} estimated month-end row(s)",
                taken.today, taken.estimated
            );
            Ok(())
        }
        Command::Webhooks {
            command: WebhooksCommand::Setup { url, new },
        } => {
            let stripe = StripeClient::new(&StripeSettings::from_env(env)?)?;
            let outcome = webhook_setup::setup_endpoint(&stripe, url.as_str(), new).await?;
            println!("{outcome}");
            Ok(())
        }
        Command::Events {
            command: EventsCommand::Replay { failed: _, id },
        } => {
            let store = connect_and_migrate(&DatabaseSettings::from_env(env)?).await?;
            let selection = id.map_or(Selection::Failed, Selection::One);
            // Events of the other mode than the key's are never applied.
            let live = StripeSettings::from_env(env)?.is_live();
            let report = replay(&store, selection, live).await?;
            println!("{report}");
            build_plans_documents(&store).await?;
            if report.missing > 0 {
                bail!("no stored event has that id");
            }
            Ok(())
        }
        Command::Dev {
            command:
                DevCommand::Token {
                    user,
                    org,
                    role,
                    slug,
                    ttl,
                },
        } => {
            let user = UserId::parse(&user)?;
            let key = DevKey::load_or_create(&AuthSettings::dev_key_path(env))?;
            let token = key.mint(&DevTokenRequest {
                user: &user,
                org: org.as_ref(),
                role: &role,
                slug: slug.as_deref(),
                ttl_secs: ttl,
            })?;
            println!("{token}");
            Ok(())
        }
    }
}

/// Builds the kept Plans documents a command's writes cleared: a server
/// builds only those its own commits cleared.
async fn build_plans_documents(store: &Store) -> anyhow::Result<()> {
    store
        .build_every_synced_plans()
        .await
        .context("could not build the Plans documents (pages read the rows meanwhile)")?;
    Ok(())
}

fn parse_look_back(raw: &str) -> Result<std::time::Duration, String> {
    crate::config::parse_duration(raw)
        .ok_or_else(|| format!("{raw:?} is not a duration such as 72h or 7d"))
}

async fn serve(env: &Env) -> anyhow::Result<()> {
    let settings = Settings::from_env(env)?;
    let app = Application::build(settings).await?;
    app.run_until_stopped().await?;
    Ok(())
}

fn stripe_if_configured(env: &Env) -> anyhow::Result<Option<StripeClient>> {
    match StripeSettings::from_env(env) {
        Ok(settings) => Ok(Some(StripeClient::new(&settings)?)),
        Err(err) if err.var == "STRIPE_SECRET_KEY" => {
            eprintln!(
                "note: STRIPE_SECRET_KEY is not set, so the customer was not checked with Stripe"
            );
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}

/// `org link`: checks the customer with Stripe (when a client is given), then
/// records the link. Returns the sentence to print.
pub async fn link_org(
    store: &Store,
    stripe: Option<&StripeClient>,
    org: &OrgId,
    customer: &StripeCustomerId,
    replace: bool,
) -> anyhow::Result<String> {
    if let Some(stripe) = stripe {
        verify_customer(stripe, org, customer).await?;
    }
    let outcome = store.link_customer(org, customer, replace).await?;
    Ok(match outcome {
        LinkOutcome::Linked => format!("linked {org} to {customer}"),
        LinkOutcome::AlreadyLinked => format!("{org} was already linked to {customer}"),
        LinkOutcome::Replaced { previous } => {
            format!("linked {org} to {customer} (replacing {previous})")
        }
    })
}

async fn verify_customer(
    stripe: &StripeClient,
    org: &OrgId,
    customer: &StripeCustomerId,
) -> anyhow::Result<()> {
    let found = match stripe.retrieve_customer(customer).await {
        Err(err) if err.is_not_found() => bail!(
            "Stripe has no customer {customer} (is it in the other mode, test or live, or another account?)"
        ),
        other => other.context("could not check the customer with Stripe")?,
    };
    if found.deleted {
        bail!("customer {customer} is deleted in Stripe");
    }
    if let Some(tagged) = found.org_id().filter(|tagged| *tagged != org.as_str()) {
        bail!(
            "customer {customer} belongs to organization {tagged} according to its Stripe metadata"
        );
    }
    Ok(())
}
