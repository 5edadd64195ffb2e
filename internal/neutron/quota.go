package neutron

import (
	"fmt"
	"math"
)

// QuotaResources are the resources with a per-project limit, in the order
// Neutron prints them.
var QuotaResources = []string{"network", "subnet", "port", "rbac_policy", "security_group", "security_group_rule"}

// QuotaRequest is a validated quota update: the limits it sets, by
// resource, and whether they must not be below what is used already
// (quota-check-limit).
type QuotaRequest struct {
	Request
	Limits     map[string]int64
	CheckLimit bool
}

func decodeQuota(v values, head Request) QuotaRequest {
	req := QuotaRequest{Request: head, Limits: map[string]int64{}, CheckLimit: v.boolean("check_limit").V}
	for _, name := range QuotaResources {
		if n, ok := v[name].(int64); ok {
			req.Limits[name] = n
		}
	}
	return req
}

// quotaResource is the quota update body's attribute map.
func quotaResource() *Resource {
	res := &Resource{Singular: "quota", Plural: "quotas"}
	for _, name := range QuotaResources {
		res.Attrs = append(res.Attrs, Attr{Name: name, AllowPut: true, Convert: convertToInt,
			Validate: validateQuotaRange, Visible: true})
	}
	res.Attrs = append(res.Attrs, Attr{Name: "check_limit", AllowPut: true, Convert: ConvertToBoolean})
	return res
}

// Quotas validates quota update bodies.
var Quotas = &Kind[QuotaRequest]{Resource: quotaResource(), decode: decodeQuota}

// convertToInt is neutron-lib's convert_to_int (booleans refused).
func convertToInt(v any) (any, error) {
	n, ok := PyInt(v)
	if !ok {
		return nil, InvalidInput(fmt.Sprintf("'%s' is not an integer", PyStr(v)))
	}
	return n, nil
}

// validateQuotaRange is the quota extension's range [-1, 2**31-1].
func validateQuotaRange(v any) error {
	n := v.(int64)
	if n < -1 {
		return reasonf("'%d' is too small - must be at least '-1'", n)
	}
	if n > math.MaxInt32 {
		return reasonf("'%d' is too large - must be no larger than '%d'", n, math.MaxInt32)
	}
	return nil
}
