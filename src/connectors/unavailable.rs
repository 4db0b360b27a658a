//! Types the catalog knows but this build cannot run yet.

use super::ConnectorError;

pub fn not_in_this_build(type_name: &str) -> ConnectorError {
    ConnectorError::Permanent(format!(
        "the {type_name} connector is not part of this build yet: the connection is saved, \
         but it cannot run"
    ))
}
