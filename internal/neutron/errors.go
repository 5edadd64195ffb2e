package neutron

import (
	"fmt"
	"net/http"
	"strings"
)

// Error is a Neutron API error: the exception class name Neutron would raise
// (the NeutronError "type"), its message, and the HTTP status the API maps it
// to. Handlers return it; the API layer renders it as NeutronError JSON.
type Error struct {
	Status  int
	Type    string
	Message string
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

func newErr(status int, typ, format string, args ...any) *Error {
	return &Error{Status: status, Type: typ, Message: fmt.Sprintf(format, args...)}
}

// Generic HTTP errors, raised by Neutron's WSGI layer (webob) rather than the plugin.

func BadRequest(format string, args ...any) *Error {
	return newErr(http.StatusBadRequest, "HTTPBadRequest", format, args...)
}

func NotFoundGeneric() *Error {
	return newErr(http.StatusNotFound, "HTTPNotFound", "The resource could not be found.")
}

func MethodNotAllowed() *Error {
	return newErr(http.StatusMethodNotAllowed, "HTTPMethodNotAllowed",
		"The server could not comply with the request since it is either malformed or otherwise incorrect.")
}

func MalformedRequestBody() *Error {
	return newErr(http.StatusBadRequest, "MalformedRequestBody", "Malformed request body: Cannot understand JSON.")
}

func PreconditionFailed(format string, args ...any) *Error {
	return newErr(http.StatusPreconditionFailed, "RevisionNumberConstraintFailed", format, args...)
}

func InternalError() *Error {
	return newErr(http.StatusInternalServerError, "HTTPInternalServerError",
		"Request Failed: internal server error while processing your request.")
}

func PolicyNotAuthorized(action string) *Error {
	return newErr(http.StatusForbidden, "PolicyNotAuthorized", "(rule:%s) is disallowed by policy", action)
}

// InvalidInput is neutron_lib's InvalidInput (400).
func InvalidInput(msg string) *Error {
	return newErr(http.StatusBadRequest, "InvalidInput", "Invalid input for operation: %s.", msg)
}

func InvalidCIDR(input string) *Error {
	return newErr(http.StatusBadRequest, "InvalidCIDR", "Invalid CIDR %s given as IP prefix.", input)
}

func OverQuota(resources ...string) *Error {
	return newErr(http.StatusConflict, "OverQuota", "Quota exceeded for resources: [%s].", quotedList(resources))
}

func QuotaResourceUnknown(resources ...string) *Error {
	return newErr(http.StatusNotFound, "QuotaResourceUnknown", "Unknown quota resources [%s].", quotedList(resources))
}

// quotedList is "'a', 'b'": resource names as Neutron's quota errors
// print a Python list of them (the names are never quoted further).
func quotedList(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = "'" + n + "'"
	}
	return strings.Join(quoted, ", ")
}

func TagNotFound(tag string) *Error {
	return newErr(http.StatusNotFound, "TagNotFound", "Tag %s could not be found.", tag)
}

// Security group errors (neutron/extensions/securitygroup.py).

func SecurityGroupNotFound(id string) *Error {
	return newErr(http.StatusNotFound, "SecurityGroupNotFound", "Security group %s does not exist", id)
}

func SecurityGroupRuleNotFound(id string) *Error {
	return newErr(http.StatusNotFound, "SecurityGroupRuleNotFound", "Security group rule %s does not exist", id)
}

func AddressGroupNotFound(id string) *Error {
	return newErr(http.StatusNotFound, "AddressGroupNotFound", "Address group %s could not be found.", id)
}

func SecurityGroupInUse(id string) *Error {
	return newErr(http.StatusConflict, "SecurityGroupInUse", "Security Group %s in use.", id)
}

func SecurityGroupCannotRemoveDefault() *Error {
	return newErr(http.StatusConflict, "SecurityGroupCannotRemoveDefault", "Insufficient rights for removing default security group.")
}

func SecurityGroupCannotUpdateDefault() *Error {
	return newErr(http.StatusConflict, "SecurityGroupCannotUpdateDefault", "Updating default security group not allowed.")
}

func SecurityGroupDefaultAlreadyExists() *Error {
	return newErr(http.StatusConflict, "SecurityGroupDefaultAlreadyExists", "Default security group already exists.")
}

func SecurityGroupRuleInvalidProtocol(protocol string) *Error {
	quoted := make([]string, 0, len(protocolNamesInErrorOrder)+1)
	quoted = append(quoted, "None")
	for _, n := range protocolNamesInErrorOrder {
		quoted = append(quoted, "'"+n+"'")
	}
	return newErr(http.StatusBadRequest, "SecurityGroupRuleInvalidProtocol",
		"Security group rule protocol %s not supported. Only protocol values [%s] and integer representations [0 to 255] are supported.",
		protocol, strings.Join(quoted, ", "))
}

func SecurityGroupRuleInvalidEtherType(ethertype string) *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupRuleInvalidEtherType",
		"Security group rule for ethertype '%s' not supported. Allowed values are ['IPv4', 'IPv6'].", ethertype)
}

func SecurityGroupInvalidPortValue(port string) *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupInvalidPortValue", "Invalid value for port %s", port)
}

func SecurityGroupInvalidPortRange() *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupInvalidPortRange", "For TCP/UDP protocols, port_range_min must be <= port_range_max")
}

func SecurityGroupProtocolRequiredWithPorts() *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupProtocolRequiredWithPorts", "Must also specify protocol if port range is given.")
}

func SecurityGroupInvalidProtocolForPort(protocol string) *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupInvalidProtocolForPort",
		"Ports cannot be specified for protocol %s. Ports are only supported for DCCP, SCTP, TCP, UDP, UDPLITE.", protocol)
}

func SecurityGroupInvalidIcmpValue(field, attr string, value int) *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupInvalidIcmpValue",
		"Invalid value for ICMP %s (%s) %d. It must be 0 to 255.", field, attr, value)
}

func SecurityGroupMissingIcmpType(code int) *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupMissingIcmpType",
		"ICMP code (port-range-max) %d is provided but ICMP type (port-range-min) is missing.", code)
}

func SecurityGroupEthertypeConflictWithProtocol(ethertype, protocol string) *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupEthertypeConflictWithProtocol",
		"Invalid ethertype %s for protocol %s.", ethertype, protocol)
}

func SecurityGroupRuleParameterConflict(ethertype, cidr string) *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupRuleParameterConflict",
		"Conflicting value ethertype %s for CIDR %s", ethertype, cidr)
}

func SecurityGroupMultipleRemoteEntites() *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupMultipleRemoteEntites",
		"Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be provided.")
}

func SecurityGroupNotSingleGroupRules() *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupNotSingleGroupRules",
		"Only allowed to update rules for one security profile at a time")
}

func SecurityGroupRulesNotSingleTenant() *Error {
	return newErr(http.StatusBadRequest, "SecurityGroupRulesNotSingleTenant",
		"Multiple tenant_ids in bulk security group rule create not allowed")
}

func DuplicateSecurityGroupRuleInPost() *Error {
	return newErr(http.StatusConflict, "DuplicateSecurityGroupRuleInPost", "Duplicate Security Group Rule in POST.")
}

func SecurityGroupRuleExists(ruleID string) *Error {
	return newErr(http.StatusConflict, "SecurityGroupRuleExists", "Security group rule already exists. Rule id is %s.", ruleID)
}

func SecurityGroupConflict(reason string) *Error {
	return newErr(http.StatusConflict, "SecurityGroupConflict", "Error %s while attempting the operation.", reason)
}
