//! `--object deals:Invoice`: HubSpot closed-won deals become QuickBooks invoices through the
//! binary, against the stateful fakes, with the customer and the item lines resolved through
//! the links the contacts ↔ customers and products ↔ items syncs keep (HubSpot associations
//! read through the v4 batch read). Also: deletes HubSpot reports (the recycle bin) reaching
//! QuickBooks behind the mass-delete guard.
//!
//! Covered: a closed-won deal → an invoice with the right `CustomerRef` and one
//! `SalesItemLineDetail` line per line item; a deal whose contact is not linked yet, one with
//! two contacts and one whose product is not linked are refused with their reasons and nothing
//! is written for them; a deal outside closed-won is out of scope; a rerun with nothing
//! changed writes nothing; once its contact is linked the refused deal is invoiced; an
//! archived contact is refused by the guard, then deactivates its customer, found through
//! `archived=true` instead of a full key scan.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use axum::http::Method;
use serde_json::{Value, json};
use syncctl_testkit::cli::CliRun;
use syncctl_testkit::fakes::hubspot::HubSpotFake;
use syncctl_testkit::fakes::quickbooks::QuickBooksFake;

use crate::support::HubSpotQuickBooks;

const HS_TOKEN: &str = "pat-na1-deals-secret";

/// The fakes (see `support`) and this module's seeding and lookups.
struct World(HubSpotQuickBooks);

impl std::ops::Deref for World {
    type Target = HubSpotQuickBooks;
    fn deref(&self) -> &HubSpotQuickBooks {
        &self.0
    }
}

impl World {
    async fn new() -> Self {
        let hs = HubSpotFake::new(HS_TOKEN);
        Self(HubSpotQuickBooks::new(HS_TOKEN, hs, QuickBooksFake::new()).await)
    }

    /// `sync run --source hubspot --target quickbooks --object OBJECT`.
    async fn run(&self, object: &str, extra: &[&str]) -> CliRun {
        let mut args = vec![
            "run",
            "--source",
            "hubspot",
            "--target",
            "quickbooks",
            "--object",
            object,
        ];
        args.extend_from_slice(extra);
        self.sync(&args).await
    }

    fn invoices(&self) -> Vec<Value> {
        self.qb.all("Invoice")
    }

    fn invoice(&self, deal: u64) -> Option<Value> {
        self.invoices()
            .into_iter()
            .find(|i| i["DocNumber"] == json!(deal.to_string()))
    }

    fn customer_id(&self, email: &str) -> String {
        self.qb
            .all("Customer")
            .into_iter()
            .find(|c| c["PrimaryEmailAddr"]["Address"] == json!(email))
            .and_then(|c| c["Id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no customer {email}"))
    }

    fn item_id(&self, name: &str) -> String {
        self.qb
            .all("Item")
            .into_iter()
            .find(|i| i["Name"] == json!(name))
            .and_then(|i| i["Id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("no item {name}"))
    }

    /// A deal with its contacts and line items (`(product, quantity, price, amount)`).
    fn deal(
        &self,
        name: &str,
        stage: &str,
        contacts: &[u64],
        lines: &[(u64, &str, &str, &str)],
    ) -> u64 {
        let deal = self.hs.seed(
            "deals",
            &[
                ("dealname", name),
                ("dealstage", stage),
                ("closedate", "2026-11-30T15:00:00.000Z"),
            ],
        );
        for c in contacts {
            self.hs.associate("deals", deal, "contacts", *c);
        }
        for (product, qty, price, amount) in lines {
            let pname = self
                .hs
                .get("products", *product)
                .map(|p| p.properties.get("name").cloned().unwrap_or_default())
                .unwrap_or_default();
            let line = self.hs.seed(
                "line_items",
                &[
                    ("name", &pname),
                    ("hs_product_id", &product.to_string()),
                    ("quantity", qty),
                    ("price", price),
                    ("amount", amount),
                ],
            );
            self.hs.associate("deals", deal, "line_items", line);
        }
        deal
    }
}

fn rejected_reasons(r: &CliRun) -> String {
    format!("{}\n{}", r.stdout, r.stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_won_deals_become_invoices_with_linked_customers_and_items() {
    let w = World::new().await;
    let ada = w.hs.seed(
        "contacts",
        &[
            ("email", "ada@example.com"),
            ("firstname", "Ada"),
            ("lastname", "Lovelace"),
        ],
    );
    let bob = w.hs.seed(
        "contacts",
        &[
            ("email", "bob@example.com"),
            ("firstname", "Bob"),
            ("lastname", "Ray"),
        ],
    );
    w.qb.insert(
        "Item",
        json!({"Name": "Widget", "Type": "Service", "UnitPrice": 10, "IncomeAccountRef": {"value": "1"}}),
    );
    w.qb.insert(
        "Item",
        json!({"Name": "Gadget", "Type": "Service", "UnitPrice": 5, "IncomeAccountRef": {"value": "1"}}),
    );
    let widget =
        w.hs.seed("products", &[("name", "Widget"), ("price", "10")]);
    let gadget = w.hs.seed("products", &[("name", "Gadget"), ("price", "5")]);
    let orphan = w.hs.seed("products", &[("name", "Not in QuickBooks")]);

    // The two syncs the deals resolve through.
    let contacts = w.run("contacts:Customer", &[]).await;
    assert_eq!(contacts.code, 0, "{}", contacts.stdout);
    assert_eq!(contacts.result["data"]["target"]["created"], 2);
    let products = w.run("products:Item", &[]).await;
    assert_eq!(products.code, 0, "{}", products.stdout);
    assert_eq!(
        products.result["data"]["sync"],
        "hubspot-quickbooks-products"
    );

    // A contact created after the contacts sync ran: not linked yet.
    let late = w.hs.seed(
        "contacts",
        &[
            ("email", "late@example.com"),
            ("firstname", "Late"),
            ("lastname", "Comer"),
        ],
    );
    let won = w.deal(
        "Ada's order",
        "closedwon",
        &[ada],
        &[(widget, "2", "10.00", "20.00"), (gadget, "3", "5", "15")],
    );
    let unlinked = w.deal(
        "Late order",
        "closedwon",
        &[late],
        &[(widget, "1", "10", "10")],
    );
    let two = w.deal(
        "Shared",
        "closedwon",
        &[ada, bob],
        &[(widget, "1", "10", "10")],
    );
    let no_item = w.deal(
        "Odd product",
        "closedwon",
        &[bob],
        &[(orphan, "1", "7", "7")],
    );
    let open = w.deal(
        "Still talking",
        "appointmentscheduled",
        &[ada],
        &[(widget, "1", "10", "10")],
    );

    let first = w.run("deals:Invoice", &[]).await;
    let out = rejected_reasons(&first);
    assert_eq!(
        first.result["data"]["sync"], "hubspot-quickbooks-deals",
        "{out}"
    );
    assert_eq!(first.result["data"]["target"]["created"], 1, "{out}");
    assert_eq!(first.result["data"]["source"]["out_of_scope"], 1, "{out}");
    assert_eq!(first.code, 0, "refused deals are retried next run: {out}");
    assert_eq!(first.result["data"]["target"]["rejected"], 3, "{out}");
    assert!(
        out.contains(&format!(
            "associations.contacts \\\"{late}\\\" is not linked in sync hubspot-quickbooks-contacts"
        )) || out.contains(&format!(
            "associations.contacts \"{late}\" is not linked in sync hubspot-quickbooks-contacts"
        )),
        "{out}"
    );
    assert!(out.contains("names 2 records"), "{out}");
    assert!(
        out.contains("is not linked in sync hubspot-quickbooks-products"),
        "{out}"
    );

    // The invoice: Ada's customer, one line per line item, with the linked items.
    let inv = w.invoice(won).expect("the closed-won deal is invoiced");
    assert_eq!(
        inv["CustomerRef"]["value"],
        json!(w.customer_id("ada@example.com"))
    );
    assert_eq!(inv["TxnDate"], "2026-11-30");
    assert_eq!(inv["PrivateNote"], "Ada's order");
    let lines: Vec<&Value> = inv["Line"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["DetailType"] == "SalesItemLineDetail")
        .collect();
    assert_eq!(lines.len(), 2, "{inv}");
    assert_eq!(
        lines[0]["SalesItemLineDetail"]["ItemRef"]["value"],
        json!(w.item_id("Widget"))
    );
    assert_eq!(lines[0]["SalesItemLineDetail"]["Qty"], json!(2.0));
    assert_eq!(lines[0]["SalesItemLineDetail"]["UnitPrice"], json!(10.0));
    assert_eq!(lines[0]["Amount"], json!(20.0));
    assert_eq!(lines[0]["Description"], "Widget");
    assert_eq!(
        lines[1]["SalesItemLineDetail"]["ItemRef"]["value"],
        json!(w.item_id("Gadget"))
    );
    assert_eq!(lines[1]["Amount"], json!(15.0));
    assert_eq!(inv["TotalAmt"], json!(35.0));
    // Nothing for the refused deals or the open one.
    for d in [unlinked, two, no_item, open] {
        assert!(w.invoice(d).is_none(), "deal {d} must not be invoiced");
    }
    assert_eq!(w.invoices().len(), 1);

    // A rerun with nothing new to invoice writes nothing to QuickBooks.
    let writes = w.qb_writes();
    let again = w.run("deals:Invoice", &[]).await;
    assert_eq!(
        again.result["data"]["target"]["created"], 0,
        "{}",
        again.stdout
    );
    assert_eq!(
        again.result["data"]["target"]["updated"], 0,
        "{}",
        again.stdout
    );
    assert_eq!(w.qb_writes(), writes, "a rerun writes nothing");
    assert_eq!(w.invoices().len(), 1);

    // Once the late contact is linked (the contacts sync runs again), its deal is invoiced.
    let contacts = w.run("contacts:Customer", &[]).await;
    assert_eq!(
        contacts.result["data"]["target"]["created"], 1,
        "{}",
        contacts.stdout
    );
    let third = w.run("deals:Invoice", &[]).await;
    assert_eq!(
        third.result["data"]["target"]["created"], 1,
        "{}",
        third.stdout
    );
    let inv = w.invoice(unlinked).expect("invoiced once linked");
    assert_eq!(
        inv["CustomerRef"]["value"],
        json!(w.customer_id("late@example.com"))
    );
    assert!(w.invoice(two).is_none() && w.invoice(no_item).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archived_contact_is_a_delete_found_in_the_recycle_bin_behind_the_guard() {
    let w = World::new().await;
    let mut ids = Vec::new();
    for (email, first) in [
        ("ada@example.com", "Ada"),
        ("bob@example.com", "Bob"),
        ("cy@example.com", "Cy"),
    ] {
        ids.push(w.hs.seed(
            "contacts",
            &[
                ("email", email),
                ("firstname", first),
                ("lastname", "Tester"),
            ],
        ));
    }
    // The built-in contacts mapping with deletes propagated as archives (a QuickBooks
    // customer cannot be deleted, only deactivated; HubSpot's delete is an archive).
    let init = crate::support::syncctl()
        .args([
            "sync",
            "init",
            "--source",
            "hubspot",
            "--target",
            "quickbooks",
            "--raw",
        ])
        .output()
        .unwrap();
    assert!(init.status.success());
    let yaml = String::from_utf8(init.stdout)
        .unwrap()
        .replace("deletes: ignore", "deletes: archive");
    assert!(yaml.contains("deletes: archive"), "{yaml}");
    std::fs::write(w.dir.path().join("sync.yaml"), yaml).unwrap();
    let first = w.sync(&["run", "--config", "sync.yaml"]).await;
    assert_eq!(first.code, 0, "{}", first.stdout);
    assert_eq!(first.result["data"]["target"]["created"], 3);

    w.hs.archive("contacts", ids[1]);
    let before = w.hs_srv.requests().len();
    let writes = w.qb_writes();
    // 1 of 3 linked contacts is 33 %: over the default 10 %, refused before any write.
    let guarded = w.sync(&["run", "--config", "sync.yaml"]).await;
    assert_eq!(guarded.code, 2, "{}", guarded.stdout);
    assert!(guarded.stdout.contains("33"), "{}", guarded.stdout);
    assert_eq!(w.qb_writes(), writes, "the guard writes nothing");
    let bob = w.customer_id("bob@example.com");
    assert_eq!(w.qb.get("Customer", &bob).unwrap()["Active"], json!(true));

    let allowed = w
        .sync(&[
            "run",
            "--config",
            "sync.yaml",
            "--max-delete-fraction",
            "0.5",
        ])
        .await;
    assert_eq!(allowed.code, 0, "{}", allowed.stdout);
    assert_eq!(
        allowed.result["data"]["target"]["deleted"], 1,
        "{}",
        allowed.stdout
    );
    assert_eq!(
        w.qb.get("Customer", &bob).unwrap()["Active"],
        json!(false),
        "a customer cannot be deleted: it is deactivated"
    );
    for other in ["ada@example.com", "cy@example.com"] {
        let id = w.customer_id(other);
        assert_eq!(w.qb.get("Customer", &id).unwrap()["Active"], json!(true));
    }
    // Found in the recycle bin, not by listing every contact.
    let reqs = w.hs_srv.requests();
    let later = &reqs[before..];
    assert!(
        later
            .iter()
            .any(|r| r.method == Method::GET && r.query.contains("archived=true")),
        "the bin was read"
    );
    assert!(
        !later
            .iter()
            .any(|r| r.method == Method::GET && r.query.contains("archived=false")),
        "no full key scan of HubSpot"
    );
}
