/**
 * The Entra ID permissions mailbridge can need, with the IDs Microsoft gives them on the two resource
 * service principals (the same in every national cloud). An app registration's
 * requiredResourceAccess and admin consent (app role assignments) name permissions by these IDs,
 * never by name.
 *
 * Sources: docs/microsoft-facts-addendum.md "Permission IDs of Microsoft Graph and Office 365
 * Exchange Online" (Microsoft Graph permissions reference; dumps of the Exchange Online service
 * principal); ../shared/reference/microsoft-facts.md §2. The same permission has one ID as an
 * application permission (Role) and another as a delegated one (Scope).
 */
import { EXCHANGE_RESOURCE_APP_ID, GRAPH_RESOURCE_APP_ID, type Resource } from '../identity/clouds.ts';

export type PermissionType = 'Role' | 'Scope';

export const RESOURCE_APP_IDS: Record<Resource, string> = { exchange: EXCHANGE_RESOURCE_APP_ID, graph: GRAPH_RESOURCE_APP_ID };

/** How the Entra portal names each resource under "API permissions". */
export const RESOURCE_NAMES: Record<Resource, string> = { exchange: 'Office 365 Exchange Online', graph: 'Microsoft Graph' };

export const PERMISSION_IDS: Record<Resource, Record<PermissionType, Record<string, string>>> = {
  exchange: {
    Role: {
      'SMTP.SendAsApp': '7146a1f0-8703-45b3-9eae-527a64c00995',
      'IMAP.AccessAsApp': '5e5addcd-3e8d-4e90-baf5-964efab2b20a',
      'POP.AccessAsApp': 'cb842b43-da6e-4506-86fe-bb12199c656d',
      full_access_as_app: 'dc890d15-9560-4a4c-9b7f-a736ec74ec40',
    },
    Scope: {
      'IMAP.AccessAsUser.All': '195adc35-e27b-454b-a7ed-1ecdffa1c09f',
      'POP.AccessAsUser.All': 'fb698133-92fa-453e-a9ed-688e10f2e5ac',
      'SMTP.Send': '76faac2a-0f20-42f1-928a-50de5b9dbe52',
      'EWS.AccessAsUser.All': '3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5',
    },
  },
  graph: {
    Role: {
      'Mail.Send': 'b633e1c5-b582-4048-a93e-9f11b44c7e96',
      'Mail.Read': '810c84a8-4a9e-49e6-bf7d-12d183f40d01',
      'Mail.ReadWrite': 'e2a3a72e-5f79-4c64-b1b1-878b674786c9',
    },
    Scope: {
      'Mail.Send': 'e383f46e-2787-4529-855e-0e479a3ffac0',
      'Mail.Read': '570282fd-fa5c-430d-a7fd-fc8dc98a9dca',
      'Mail.ReadWrite': '024d486e-b451-40bb-833d-3e66d98c5c73',
      'Mail.Read.Shared': '7b9103a5-4610-446b-9670-80643382c1fa',
      'Mail.Send.Shared': 'a367ab51-6b49-43bf-a716-a1fb06d2a174',
      'User.Read': 'e1fe6dd8-ba31-4d61-89e7-88639da4683d',
      offline_access: '7427e0e9-2fba-42fe-b0c0-848c9e6a8182',
      openid: '37f7f235-527c-4136-accd-4a02d197296e',
      profile: '14dad69e-099b-42c9-810b-d002981feec1',
      email: '64a6cdd6-aab1-4aaf-94b8-3cc8405e90d0',
    },
  },
};

/** The ID of a permission, or undefined when mailbridge does not know it (a hand-written scope override). */
export function permissionId(resource: Resource, type: PermissionType, name: string): string | undefined {
  const table = PERMISSION_IDS[resource][type];
  const key = Object.keys(table).find((k) => k.toLowerCase() === name.toLowerCase());
  return key === undefined ? undefined : table[key];
}
