"""driverdeploy: a custom vdsm hook plugin, like ovirt-host-deploy's example.

It ships the RPM of a driver in its own folder (built from vdsmdummy-driver.spec
when the bundle is made) and installs it in the packages stage; in misc it writes
/etc/vdsm/vdsmdummy.conf from what the driver installed. satchel copies this folder
to /usr/share/satchel/hook-plugins/driverdeploy/ on the host; a later
`install hooks` without the bundle runs that copy.
"""

from __future__ import annotations

from installer import engine
from installer.engine import Stages
from installer.errors import SatchelError
from installer.plugins.hooks import LocalRpms, unchanged

CONF = "/etc/vdsm/vdsmdummy.conf"
VERSION_FILE = "/usr/share/vdsmdummy-driver/VERSION"


class Plugin(engine.PluginBase):
    @engine.event(stage=Stages.PACKAGES, name="driverdeploy.packages")
    def _packages(self) -> None:
        assert self.plugin_path is not None
        rpms = sorted(self.plugin_path.glob("*.rpm"))
        if not rpms:
            raise SatchelError(f"driverdeploy: no RPM in {self.plugin_path}")
        self.transaction.append(LocalRpms(rpms))

    @engine.event(stage=Stages.MISC, name="driverdeploy.misc")
    def _misc(self) -> None:
        version = self.resolve(VERSION_FILE).read_text(encoding="utf-8").strip()
        data = (f"# written by the driverdeploy hook plugin\n"
                f"[vdsmdummy]\ndriver = {version}\n").encode()
        if not unchanged(self, CONF, data, 0o644):
            self.transaction.append(engine.FileWrite(CONF, data, mode=0o644,
                                                     owner="root", group="root"))
