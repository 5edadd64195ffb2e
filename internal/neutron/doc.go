// Package neutron holds the resources moat serves (networks, subnets,
// ports, security groups and their rules, RBAC policies, quotas), Neutron
// 21's attribute maps for them and its rules for validating and
// normalising requests, and Neutron's errors. It is pure: no I/O, no SQL,
// no HTTP.
//
// Validation is the one step where a decoded JSON body becomes Go values:
// a Kind (Networks, Ports...) checks a body as Neutron's
// prepare_request_body does and returns typed requests (NetworkRequest,
// PortRequest...). The API layer then hands those to the plugin packages
// (internal/ipam, internal/binding), the store persists the resulting
// objects, and the firewall compiler reads them.
package neutron
