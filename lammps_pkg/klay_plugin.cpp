/* ----------------------------------------------------------------------
   KLAY package as a LAMMPS plugin: `plugin load libklay_lammps.so`, or automatically at start-up
   from a directory in LAMMPS_PLUGIN_PATH (LAMMPS loads files named *plugin.so there; the build
   links klayplugin.so to this library for that).
------------------------------------------------------------------------- */

#include "lammpsplugin.h"

#include "version.h"

#include "pair_klay.h"

using namespace LAMMPS_NS;

static Pair *klay_creator(LAMMPS *lmp)
{
  return new PairKLay(lmp);
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  lammpsplugin_t plugin;
  plugin.version = LAMMPS_VERSION;
  plugin.style = "pair";
  plugin.name = "klay";
  plugin.info = "KLay machine-learned potentials (YAML + weights) on libtorch";
  plugin.author = "klay-lammps";
  plugin.creator.v1 = (lammpsplugin_factory1 *) &klay_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
