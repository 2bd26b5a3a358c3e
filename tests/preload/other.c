/* SPDX-License-Identifier: MIT
 *
 * An empty module that the exec tests preload beside libshmtrack.so, to check that LD_PRELOAD
 * keeps the other entries when the preload adds or removes itself.
 */
int st_preload_other_marker(void);

int st_preload_other_marker(void)
{
    return 0;
}
