package registry

import (
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/utils/ptr"
)

// widgetCRD has two versions with different schemas (so each is judged
// at spec.versions[i]) and shares its subresources and columns (judged
// at the top of the spec, where upstream hoists them).
const widgetCRDManifest = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  scope: Namespaced
  names: {plural: widgets, singular: widget, kind: Widget, shortNames: [wdg], categories: [all]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          metadata: {type: object, properties: {name: {type: string, maxLength: 20}}}
          spec:
            type: object
            required: [replicas]
            properties:
              size: {type: string, default: medium, enum: [small, medium, large]}
              replicas: {type: integer, minimum: 0}
              port: {x-kubernetes-int-or-string: true, anyOf: [{type: integer}, {type: string}]}
              extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
              ports:
                type: array
                x-kubernetes-list-type: map
                x-kubernetes-list-map-keys: [port, protocol]
                items:
                  type: object
                  required: [port]
                  properties:
                    port: {type: integer}
                    protocol: {type: string, default: TCP}
              tags: {type: array, x-kubernetes-list-type: set, items: {type: string}}
              labels: {type: object, additionalProperties: {type: string}}
              template: {type: object, x-kubernetes-embedded-resource: true, x-kubernetes-preserve-unknown-fields: true}
            x-kubernetes-validations:
            - rule: "self.replicas <= 10"
              message: too many
          status: {type: object, properties: {replicas: {type: integer}}}
  - name: v1beta1
    served: true
    storage: false
    subresources:
      status: {}
      scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
    additionalPrinterColumns:
    - {name: Size, type: string, jsonPath: .spec.size}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}
`

func widgetCRD(t *testing.T) *apiextensionsv1.CustomResourceDefinition {
	crd := decodeManifest(t, widgetCRDManifest).(*apiextensionsv1.CustomResourceDefinition)
	defaultCRD(crd)
	return crd
}

// singleVersion leaves only v1, whose schema upstream then judges at
// spec.validation.
func singleVersion(c *apiextensionsv1.CustomResourceDefinition) *apiextensionsv1.JSONSchemaProps {
	c.Spec.Versions = c.Spec.Versions[:1]
	return c.Spec.Versions[0].Schema.OpenAPIV3Schema
}

func specProps(c *apiextensionsv1.CustomResourceDefinition) map[string]apiextensionsv1.JSONSchemaProps {
	return c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"].Properties
}

func TestValidateCRD(t *testing.T) {
	type C = *apiextensionsv1.CustomResourceDefinition
	fresh := func() C { return widgetCRD(t) }
	setSpecProp := func(c C, name string, p apiextensionsv1.JSONSchemaProps) {
		specProps(c)[name] = p
	}
	runCases(t, fresh, validateCRD, []vcase[C]{
		{name: "valid"},
		{name: "valid with one version", mutate: func(c C) { singleVersion(c) }},
		{name: "name", mutate: func(c C) { c.Name = "widgets.example.org" },
			want: []string{`metadata.name: Invalid value: "widgets.example.org": must be spec.names.plural+"."+spec.group`}},
		{name: "group without a dot", mutate: func(c C) { c.Spec.Group, c.Name = "example", "widgets.example" },
			want: []string{`spec.group: Invalid value: "example": should be a domain with at least one dot`}},
		{name: "scope", mutate: func(c C) { c.Spec.Scope = "Global" },
			want: []string{`spec.scope: Unsupported value: "Global": supported values: "Cluster", "Namespaced"`}},
		{name: "names", mutate: func(c C) {
			c.Spec.Names.Plural, c.Name = "Widgets", "Widgets.example.com"
			c.Spec.Names.ListKind = "Widget"
			c.Spec.Names.ShortNames = []string{"w_"}
		}, want: []string{
			`spec.names.plural: Invalid value: "Widgets": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
			`spec.names.shortNames[0]: Invalid value: "w_": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
			`spec.names.listKind: Invalid value: "Widget": kind and listKind may not be the same`}},
		{name: "no kind", mutate: func(c C) { c.Spec.Names.Kind, c.Spec.Names.Singular, c.Spec.Names.ListKind = "", "", "" },
			want: []string{"spec.names.singular: Required value", "spec.names.kind: Required value", "spec.names.listKind: Required value"}},
		{name: "version name", mutate: func(c C) { c.Spec.Versions[0].Name = "V1" },
			want: []string{`spec.versions[0].name: Invalid value: "V1": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`,
				`spec.version: Invalid value: "V1": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')`}},
		{name: "no schema", mutate: func(c C) { c.Spec.Versions[1].Schema = nil },
			want: []string{"spec.versions[1].schema.openAPIV3Schema: Required value"}},
		{name: "list-map key neither required nor defaulted", mutate: func(c C) {
			singleVersion(c)
			ports := specProps(c)["ports"]
			item := ports.Items.Schema
			protocol := item.Properties["protocol"]
			protocol.Default = nil
			item.Properties["protocol"] = protocol
		}, want: []string{"spec.validation.openAPIV3Schema.properties[spec].properties[ports].items.properties[protocol].default: Required value: this property is in x-kubernetes-list-map-keys, so it must have a default or be a required property"}},
		{name: "list types", mutate: func(c C) {
			setSpecProp(c, "a", apiextensionsv1.JSONSchemaProps{Type: "array", XListType: ptr.To("bag"), Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}})
			setSpecProp(c, "b", apiextensionsv1.JSONSchemaProps{Type: "string", XListType: ptr.To("set"), XListMapKeys: []string{"x"}})
			setSpecProp(c, "c", apiextensionsv1.JSONSchemaProps{Type: "array", XListType: ptr.To("map"), XListMapKeys: []string{"k", "o"},
				Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "object", Nullable: true, Required: []string{"k"},
					Properties: map[string]apiextensionsv1.JSONSchemaProps{"k": {Type: "object"}}}}})
			setSpecProp(c, "d", apiextensionsv1.JSONSchemaProps{Type: "array", XListType: ptr.To("set"),
				Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "object"}}})
		}, want: []string{
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[a].x-kubernetes-list-type: Unsupported value: "bag": supported values: "atomic", "set", "map"`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[b].type: Invalid value: "string": must be array if x-kubernetes-list-type is specified`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[b].x-kubernetes-list-type: Invalid value: "set": must be map if x-kubernetes-list-map-keys is non-empty`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[c].items.properties[k].type: Invalid value: "object": must be a scalar type if parent array's x-kubernetes-list-type is map`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[c].x-kubernetes-list-map-keys: Invalid value: ["k","o"]: entries must all be names of item properties`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[c].items.nullable: Forbidden: cannot be nullable when x-kubernetes-list-type is map`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[d].items.x-kubernetes-map-type: Invalid value: null: must be atomic as item of a list with x-kubernetes-list-type=set`}},
		{name: "not structural", mutate: func(c C) {
			setSpecProp(c, "a", apiextensionsv1.JSONSchemaProps{Description: "no type"})
			setSpecProp(c, "b", apiextensionsv1.JSONSchemaProps{Type: "string", AnyOf: []apiextensionsv1.JSONSchemaProps{{Type: "string", Pattern: "^a"}}})
			setSpecProp(c, "c", apiextensionsv1.JSONSchemaProps{XIntOrString: true, XPreserveUnknownFields: ptr.To(true)})
			setSpecProp(c, "d", apiextensionsv1.JSONSchemaProps{Type: "array"})
		}, want: []string{
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[a].type: Required value: must not be empty for specified object fields`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[b].anyOf[0].type: Forbidden: must be empty to be structural`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[c].x-kubernetes-preserve-unknown-fields: Invalid value: true: must be false if x-kubernetes-int-or-string is true`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[d].items: Required value: must be specified`}},
		{name: "root", mutate: func(c C) {
			s := c.Spec.Versions[1].Schema.OpenAPIV3Schema
			s.Type, s.XPreserveUnknownFields = "array", nil
			s.Items = &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}
		}, want: []string{
			`spec.versions[1].schema.openAPIV3Schema.type: Invalid value: "array": only "object" is allowed as the type at the root of the schema if the status subresource is enabled`,
			`spec.versions[1].schema.openAPIV3Schema.type: Invalid value: "array": must be object at the root`}},
		{name: "root metadata", mutate: func(c C) {
			s := c.Spec.Versions[1].Schema.OpenAPIV3Schema
			s.Properties = map[string]apiextensionsv1.JSONSchemaProps{"metadata": {Type: "object", Properties: map[string]apiextensionsv1.JSONSchemaProps{
				"labels": {Type: "object"}}}}
		}, want: []string{"spec.versions[1].schema.openAPIV3Schema.properties[metadata]: Forbidden: must not specify anything other than name and generateName, but metadata is implicitly specified"}},
		{name: "types and unsupported keywords", mutate: func(c C) {
			setSpecProp(c, "a", apiextensionsv1.JSONSchemaProps{Type: "int"})
			setSpecProp(c, "b", apiextensionsv1.JSONSchemaProps{Type: "array", UniqueItems: true, Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &apiextensionsv1.JSONSchemaProps{Type: "string"}}})
			setSpecProp(c, "c", apiextensionsv1.JSONSchemaProps{Type: "object", XPreserveUnknownFields: ptr.To(false)})
		}, want: []string{
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[a].type: Unsupported value: "int": supported values: "array", "boolean", "integer", "number", "object", "string"`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[b].uniqueItems: Forbidden: uniqueItems cannot be set to true since the runtime complexity becomes quadratic`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[c].x-kubernetes-preserve-unknown-fields: Invalid value: false: must be true or undefined`}},
		{name: "$schema", mutate: func(c C) {
			setSpecProp(c, "a", apiextensionsv1.JSONSchemaProps{Type: "string", Schema: "http://json-schema.org/schema#"})
		},
			want: []string{`spec.versions[0].schema.openAPIV3Schema: Invalid value: "": OpenAPIV3Schema 'schema' is not supported`}},
		{name: "items array", mutate: func(c C) {
			setSpecProp(c, "a", apiextensionsv1.JSONSchemaProps{Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{
				JSONSchemas: []apiextensionsv1.JSONSchemaProps{{Type: "string"}}}})
		}, want: []string{`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[a].items: Forbidden: items must be a schema object and not an array`}},
		{name: "defaults", mutate: func(c C) {
			setSpecProp(c, "a", apiextensionsv1.JSONSchemaProps{Type: "integer", Default: &apiextensionsv1.JSON{Raw: []byte(`"x"`)}})
			setSpecProp(c, "b", apiextensionsv1.JSONSchemaProps{Type: "object", Default: &apiextensionsv1.JSON{Raw: []byte(`{"known":"a","unknown":1}`)},
				Properties: map[string]apiextensionsv1.JSONSchemaProps{"known": {Type: "string", Enum: []apiextensionsv1.JSON{{Raw: []byte(`"b"`)}}}}})
		}, want: []string{
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[a].default: Invalid value: "string":  in body must be of type integer: "string"`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[b].default: Invalid value: {"known":"a","unknown":1}: must not have unknown fields`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[b].default.known: Unsupported value: "a": supported values: "b"`}},
		{name: "top-level metadata default", mutate: func(c C) {
			s := c.Spec.Versions[0].Schema.OpenAPIV3Schema
			m := s.Properties["metadata"]
			m.Default = &apiextensionsv1.JSON{Raw: []byte(`{}`)}
			s.Properties["metadata"] = m
		}, want: []string{"spec.versions[0].schema.openAPIV3Schema.properties[metadata].default: Forbidden: must not be set in top-level metadata"}},
		{name: "rules", mutate: func(c C) {
			p := c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			p.XValidations = apiextensionsv1.ValidationRules{{Rule: "self.replicas <="}, {Rule: "self.x", Reason: ptr.To(apiextensionsv1.FieldValueErrorReason("Bad"))},
				{Rule: "size(self) > 1", MessageExpression: "1"}}
			c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = p
		}, want: []string{
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].reason: Unsupported value: "Bad": supported values: "FieldValueDuplicate", "FieldValueForbidden", "FieldValueInvalid", "FieldValueRequired"`}},
		{name: "rules that do not compile", mutate: func(c C) {
			p := c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
			p.XValidations = apiextensionsv1.ValidationRules{{Rule: "self.replicas <="}, {Rule: "size(self) > 1", MessageExpression: "1"}, {Rule: "1"}}
			c.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"] = p
		}, want: []string{
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[0].rule: Invalid value: {"Rule":"self.replicas \u003c=","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: compilation failed: ERROR: <input>:1:17: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER}
 | self.replicas <=
 | ................^`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[1].messageExpression: Invalid value: {"Rule":"size(self) \u003e 1","Message":"","MessageExpression":"1","Reason":null,"FieldPath":"","OptionalOldSelf":null}: messageExpression must evaluate to a string`,
			`spec.versions[0].schema.openAPIV3Schema.properties[spec].x-kubernetes-validations[2].rule: Invalid value: {"Rule":"1","Message":"","MessageExpression":"","Reason":null,"FieldPath":"","OptionalOldSelf":null}: cel expression must evaluate to a bool`}},
		{name: "columns", mutate: func(c C) {
			for i := range c.Spec.Versions {
				c.Spec.Versions[i].AdditionalPrinterColumns = []apiextensionsv1.CustomResourceColumnDefinition{{Type: "text", JSONPath: "spec.size", Format: "x"}}
			}
		}, want: []string{"spec.additionalPrinterColumns[0].name: Required value",
			`spec.additionalPrinterColumns[0].type: Invalid value: "text": must be one of boolean,date,integer,number,string`,
			`spec.additionalPrinterColumns[0].format: Invalid value: "x": must be one of byte,date,date-time,double,float,int32,int64,password`,
			`spec.additionalPrinterColumns[0].JSONPath: Invalid value: "spec.size": must be a simple json path starting with .`}},
		{name: "per-version columns", mutate: func(c C) { c.Spec.Versions[1].AdditionalPrinterColumns[0].Type = "" },
			want: []string{"spec.versions[1].additionalPrinterColumns[0].type: Required value: must be one of boolean,date,integer,number,string"}},
		{name: "scale", mutate: func(c C) {
			for i := range c.Spec.Versions {
				c.Spec.Versions[i].Subresources.Scale = &apiextensionsv1.CustomResourceSubresourceScale{SpecReplicasPath: ".status.replicas",
					LabelSelectorPath: ptr.To(".metadata.labels")}
			}
		}, want: []string{`spec.subresources.scale.specReplicasPath: Invalid value: ".status.replicas": should be a json path under .spec`,
			"spec.subresources.scale.statusReplicasPath: Required value",
			`spec.subresources.scale.labelSelectorPath: Invalid value: ".metadata.labels": should be a json path under either .spec or .status`}},
		{name: "conversion webhook", mutate: func(c C) {
			c.Spec.Conversion = &apiextensionsv1.CustomResourceConversion{Strategy: apiextensionsv1.WebhookConverter,
				Webhook: &apiextensionsv1.WebhookConversion{ConversionReviewVersions: []string{"v2"}}}
		}, want: []string{"spec.conversion.webhookClientConfig: Required value: required when strategy is set to Webhook",
			`spec.conversion.conversionReviewVersions: Invalid value: ["v2"]: must include at least one of v1, v1beta1`}},
		{name: "conversion none with webhook", mutate: func(c C) {
			c.Spec.Conversion.Webhook = &apiextensionsv1.WebhookConversion{ClientConfig: &apiextensionsv1.WebhookClientConfig{URL: ptr.To("https://x")},
				ConversionReviewVersions: []string{"v1"}}
		}, want: []string{"spec.conversion.webhookClientConfig: Forbidden: should not be set when strategy is not set to Webhook",
			"spec.conversion.conversionReviewVersions: Forbidden: should not be set when strategy is not set to Webhook"}},
		{name: "preserveUnknownFields", mutate: func(c C) { c.Spec.PreserveUnknownFields = true },
			want: []string{"spec.preserveUnknownFields: Invalid value: true: must be false in order to use defaults in the schema",
				"spec.preserveUnknownFields: Invalid value: true: cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead"}},
		{name: "protected group", mutate: func(c C) { c.Spec.Group, c.Name = "x.k8s.io", "widgets.x.k8s.io" },
			want: []string{`metadata.annotations[api-approved.kubernetes.io]: Required value: protected groups must have approval annotation "api-approved.kubernetes.io", see https://github.com/kubernetes/enhancements/pull/1111`}},
		{name: "protected group, unapproved", mutate: func(c C) {
			c.Spec.Group, c.Name = "x.k8s.io", "widgets.x.k8s.io"
			c.Annotations = map[string]string{"api-approved.kubernetes.io": "unapproved, testing"}
		}},
	})
}

// The valid cases compare only a prefix for the huge version renderings.
func TestValidateCRDVersionsRendering(t *testing.T) {
	c := widgetCRD(t)
	c.Spec.Versions[1].Storage = true
	errs := validateCRD(c, nil)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `"Subresources":null,"AdditionalPrinterColumns":null,"SelectableFields":null}]: must have exactly one version marked as storage version`) {
		t.Errorf("errors: %v", errs)
	}
}

func TestValidateCRDUpdate(t *testing.T) {
	old := widgetCRD(t)
	// Stored before validation: an unsupported type.
	specProps(old)["legacy"] = apiextensionsv1.JSONSchemaProps{Type: "int"}
	old.Status.Conditions = []apiextensionsv1.CustomResourceDefinitionCondition{{Type: apiextensionsv1.Established, Status: apiextensionsv1.ConditionTrue}}
	upd := old.DeepCopy()
	specProps(upd)["more"] = apiextensionsv1.JSONSchemaProps{Type: "string"}
	expectErrs(t, validateCRD(upd, old))
	specProps(upd)["worse"] = apiextensionsv1.JSONSchemaProps{Type: "str"}
	expectErrs(t, validateCRD(upd, old),
		`spec.versions[0].schema.openAPIV3Schema.properties[spec].properties[worse].type: Unsupported value: "str": supported values: "array", "boolean", "integer", "number", "object", "string"`)
	// Established: kind and scope are fixed; group and plural always are.
	upd = old.DeepCopy()
	upd.Spec.Names.Kind, upd.Spec.Names.ListKind, upd.Spec.Scope = "Gadget", "GadgetList", apiextensionsv1.ClusterScoped
	upd.Spec.Group = "example.org"
	expectErrs(t, validateCRD(upd, old),
		`spec.scope: Invalid value: "Cluster": field is immutable`,
		`spec.names.kind: Invalid value: "Gadget": field is immutable`,
		`spec.group: Invalid value: "example.org": field is immutable`)
	// A status write is not judged.
	expectErrs(t, validateCRD(old.DeepCopy(), old))
}
