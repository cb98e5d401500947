-- The demo shop keeps its orders in its own database (SQLite: shop.db beside the ledger;
-- PostgreSQL: its own table demo_shop_orders), as a merchant's backend would: the ledger holds
-- payments only. The old table held demo orders only.
DROP TABLE IF EXISTS shop_orders;
