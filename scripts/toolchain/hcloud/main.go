// Stand-in for pulumi-resource-hcloud: the upstream Terraform provider through the bridge.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/hetznercloud/terraform-provider-hcloud/hcloud"
	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	shim "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/x/muxer"
	"github.com/pulumi/pulumi-terraform-bridge/v3/unstable/metadata"
)

var version = "0.0.1" // set with -ldflags to the npm package's version

func main() {
	ctx := context.Background()
	info := tfbridge.ProviderInfo{
		P:            pf.MuxShimWithPF(ctx, shimv2.NewProvider(hcloud.Provider()), hcloud.NewPluginProvider()),
		Name:         "hcloud",
		Version:      version,
		MetadataInfo: tfbridge.NewProviderMetadata([]byte("{}")),
		Resources:    map[string]*tfbridge.ResourceInfo{},
	}
	// Pulumi IDs are strings; some resources declare a numeric "id" attribute.
	info.P.ResourcesMap().Range(func(key string, r shim.Resource) bool {
		if id, ok := r.Schema().GetOk("id"); ok && id.Type() != shim.TypeString {
			ri := info.Resources[key]
			if ri == nil {
				ri = &tfbridge.ResourceInfo{}
				info.Resources[key] = ri
			}
			if ri.Fields == nil {
				ri.Fields = map[string]*tfbridge.SchemaInfo{}
			}
			ri.Fields["id"] = &tfbridge.SchemaInfo{Type: "string"}
		}
		return true
	})
	info.MustComputeTokens(tokens.SingleModule("hcloud_", "index", tokens.MakeStandard("hcloud")))
	// Like the Pulumi provider: a missing "name" gets <resource name>-<random suffix>.
	info.SetAutonaming(255, "-")

	// A muxed provider needs a table saying which sub-provider serves which token. Pulumi's
	// build precomputes it with tfgen into bridge-metadata.json; it is cheap, so compute it
	// here at start-up instead of running tfgen.
	d, err := info.P.(interface {
		ResolveDispatch(*tfbridge.ProviderInfo) (muxer.DispatchTable, error)
	}).ResolveDispatch(&info)
	if err == nil {
		err = metadata.Set(info.GetMetadata(), "mux", d)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hcloud: computing the mux dispatch table:", err)
		os.Exit(1)
	}
	// The schema is only served to `pulumi package get-schema`-like callers; a stub will do.
	pf.MainWithMuxer(ctx, "hcloud", info, []byte(`{"name":"hcloud","version":"`+version+`"}`))
}
