// Stand-in for pulumi-resource-hcloud: the upstream Terraform provider through the bridge
// (served by serveMuxed, ../bridge/serve.go), with the bridge's default tokens and names.
package main

import (
	"context"

	"github.com/hetznercloud/terraform-provider-hcloud/hcloud"
	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	shimv2 "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfshim/sdk-v2"
)

var version = "0.0.1" // set with -ldflags to the npm package's version

func main() {
	ctx := context.Background()
	serveMuxed(ctx, "hcloud", version, tfbridge.ProviderInfo{
		P: pf.MuxShimWithPF(ctx, shimv2.NewProvider(hcloud.Provider()), hcloud.NewPluginProvider()),
	})
}
