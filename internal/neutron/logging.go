package neutron

import (
	"net/http"
)

// The logging extension (neutron_lib/api/definitions/logging.py): network
// log objects say which packets of which ports the agents log. moat logs
// security groups only, as Neutron's OVS driver does.
const (
	LogResourceSecurityGroup = "security_group"

	LogEventAccept = "ACCEPT"
	LogEventDrop   = "DROP"
	LogEventAll    = "ALL"

	// logResourceTypeMaxLen is db_const.RESOURCE_TYPE_FIELD_SIZE.
	logResourceTypeMaxLen = 36
)

// LogEvents are the events a log may record, in Neutron's order.
var LogEvents = []string{LogEventAccept, LogEventDrop, LogEventAll}

// LoggableResourceTypes are the resource types moat's agents can log
// (GET /v2.0/log/loggable-resources).
var LoggableResourceTypes = []string{LogResourceSecurityGroup}

// Log is a network log object. ResourceID names a security group and
// TargetID a port; either or both may be empty: a log without both covers
// every port of its project.
type Log struct {
	ID           string
	ProjectID    string
	Name         string
	Description  string
	ResourceType string
	ResourceID   string
	TargetID     string
	Event        string
	Enabled      bool
	StandardAttrs
}

// Logs reports whether the log records packets with verdict (ACCEPT or
// DROP).
func (l *Log) Logs(verdict string) bool {
	return l.Enabled && (l.Event == LogEventAll || l.Event == verdict)
}

// validateUUIDOrNone is type:uuid_or_none.
func validateUUIDOrNone(v any) error {
	if v == nil {
		return nil
	}
	return ValidateUUID(v)
}

// LogResource is the logs attribute map, with the standard attributes
// (description, timestamps, revision) Neutron's Log model carries.
var LogResource = &Resource{
	Singular: "log",
	Plural:   "logs",
	Attrs: append([]Attr{
		{Name: "id", Validate: ValidateUUID, Visible: true, Filter: true, SortKey: true},
		projectAttr("project_id"),
		{Name: "name", AllowPost: true, AllowPut: true, Default: "", HasDefault: true,
			Validate: ValidateString(NameMaxLen), Visible: true, Filter: true, SortKey: true},
		{Name: "resource_type", AllowPost: true, Validate: ValidateString(logResourceTypeMaxLen), Visible: true, Filter: true, SortKey: true},
		{Name: "resource_id", AllowPost: true, HasDefault: true, Validate: validateUUIDOrNone, Visible: true, Filter: true, SortKey: true},
		{Name: "event", AllowPost: true, Default: LogEventAll, HasDefault: true, Validate: ValidateValues(LogEvents...), Visible: true, Filter: true},
		{Name: "target_id", AllowPost: true, HasDefault: true, Validate: validateUUIDOrNone, Visible: true, Filter: true, SortKey: true},
		{Name: "enabled", AllowPost: true, AllowPut: true, Default: true, HasDefault: true, Convert: ConvertToBoolean,
			Visible: true, Filter: true, SortKey: true},
		projectAttr("tenant_id"),
	}, standardAttrs(false)...),
}

// LogRequest is a validated log create, or an update (name, description,
// enabled).
type LogRequest struct {
	Request
	Name, Description    Opt[string]
	ResourceType         string
	ResourceID, TargetID *string
	Event                string
	Enabled              Opt[bool]
}

func decodeLog(v values, head Request) LogRequest {
	return LogRequest{Request: head, Name: v.str("name"), Description: v.str("description"),
		ResourceType: v.str("resource_type").V, ResourceID: v.optStr("resource_id"), TargetID: v.optStr("target_id"),
		Event: v.str("event").V, Enabled: v.boolean("enabled")}
}

// Logs validates log bodies (Neutron's logging API takes one per POST).
var Logs = &Kind[LogRequest]{Resource: LogResource, decode: decodeLog}

// LogNotFound is LogResourceNotFound.
func LogNotFound(id string) *Error {
	return newErr(http.StatusNotFound, "LogResourceNotFound", "Log resource %s could not be found.", id)
}

// InvalidLogResourceType refuses a resource_type no driver logs.
func InvalidLogResourceType(t string) *Error {
	return newErr(http.StatusBadRequest, "InvalidLogResourceType", "Invalid log resource_type: %s.", t)
}

// LogResourceNotFound is logapi's ResourceNotFound: resource_id names no
// security group.
func LogResourceNotFound(id string) *Error {
	return newErr(http.StatusNotFound, "ResourceNotFound", "Resource %s could not be found.", id)
}

// LogTargetNotFound is TargetResourceNotFound: target_id names no port.
func LogTargetNotFound(id string) *Error {
	return newErr(http.StatusNotFound, "TargetResourceNotFound", "Target resource %s could not be found.", id)
}

// InvalidLogResourceConstraint: the target port does not carry the
// resource group.
func InvalidLogResourceConstraint(sgID, portID string) *Error {
	return newErr(http.StatusBadRequest, "InvalidResourceConstraint",
		"Invalid resource constraint between resource (security_group %s) and target resource (port %s).", sgID, portID)
}
