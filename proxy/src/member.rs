//! The proxy as a member of a fleet: what the fleet member
//! (`ferry_fleet::etcd::member`) drives here. A table it puts in force goes
//! to the admin table the request path reads, then to the write gates, in
//! that order (see `fence`).

use std::sync::Arc;

use async_trait::async_trait;
use ferry_fleet::etcd::member::Local;
use ferry_fleet::state::BucketTable;

use crate::admin::Admin;
use crate::fence::{WriteGates, generation};

pub struct FleetLocal {
    pub admin: Arc<Admin>,
    pub gates: Arc<WriteGates>,
}

#[async_trait]
impl Local for FleetLocal {
    fn apply(&self, table: Arc<BucketTable>, in_contact: bool) {
        self.admin.put_in_force(table.clone());
        for b in table.buckets.values() {
            self.gates
                .set(&b.bucket, generation(b), b.routing().fenced || !in_contact);
        }
        crate::metrics::fleet_in_contact(in_contact);
    }

    async fn drained(&self, bucket: &str) {
        self.gates.drained(bucket).await;
    }

    fn target_urls(&self) -> Vec<String> {
        self.admin.target_urls().to_vec()
    }
}
