var J=globalThis,O=J.ShadowRoot&&(J.ShadyCSS===void 0||J.ShadyCSS.nativeShadow)&&"adoptedStyleSheets"in Document.prototype&&"replace"in CSSStyleSheet.prototype,B=Symbol(),ot=new WeakMap,S=class{constructor(t,e,s){if(this._$cssResult$=!0,s!==B)throw Error("CSSResult is not constructable. Use `unsafeCSS` or `css` instead.");this.cssText=t,this.t=e}get styleSheet(){let t=this.o,e=this.t;if(O&&t===void 0){let s=e!==void 0&&e.length===1;s&&(t=ot.get(e)),t===void 0&&((this.o=t=new CSSStyleSheet).replaceSync(this.cssText),s&&ot.set(e,t))}return t}toString(){return this.cssText}},at=r=>new S(typeof r=="string"?r:r+"",void 0,B),z=(r,...t)=>{let e=r.length===1?r[0]:t.reduce((s,i,n)=>s+(o=>{if(o._$cssResult$===!0)return o.cssText;if(typeof o=="number")return o;throw Error("Value passed to 'css' function must be a 'css' function result: "+o+". Use 'unsafeCSS' to pass non-literal values, but take care to ensure page security.")})(i)+r[n+1],r[0]);return new S(e,r,B)},lt=(r,t)=>{if(O)r.adoptedStyleSheets=t.map(e=>e instanceof CSSStyleSheet?e:e.styleSheet);else for(let e of t){let s=document.createElement("style"),i=J.litNonce;i!==void 0&&s.setAttribute("nonce",i),s.textContent=e.cssText,r.appendChild(s)}},V=O?r=>r:r=>r instanceof CSSStyleSheet?(t=>{let e="";for(let s of t.cssRules)e+=s.cssText;return at(e)})(r):r;var{is:Mt,defineProperty:Tt,getOwnPropertyDescriptor:Ut,getOwnPropertyNames:Nt,getOwnPropertySymbols:Ht,getPrototypeOf:Jt}=Object,I=globalThis,ct=I.trustedTypes,Ot=ct?ct.emptyScript:"",It=I.reactiveElementPolyfillSupport,C=(r,t)=>r,q={toAttribute(r,t){switch(t){case Boolean:r=r?Ot:null;break;case Object:case Array:r=r==null?r:JSON.stringify(r)}return r},fromAttribute(r,t){let e=r;switch(t){case Boolean:e=r!==null;break;case Number:e=r===null?null:Number(r);break;case Object:case Array:try{e=JSON.parse(r)}catch{e=null}}return e}},dt=(r,t)=>!Mt(r,t),ht={attribute:!0,type:String,converter:q,reflect:!1,useDefault:!1,hasChanged:dt};Symbol.metadata??=Symbol("metadata"),I.litPropertyMetadata??=new WeakMap;var g=class extends HTMLElement{static addInitializer(t){this._$Ei(),(this.l??=[]).push(t)}static get observedAttributes(){return this.finalize(),this._$Eh&&[...this._$Eh.keys()]}static createProperty(t,e=ht){if(e.state&&(e.attribute=!1),this._$Ei(),this.prototype.hasOwnProperty(t)&&((e=Object.create(e)).wrapped=!0),this.elementProperties.set(t,e),!e.noAccessor){let s=Symbol(),i=this.getPropertyDescriptor(t,s,e);i!==void 0&&Tt(this.prototype,t,i)}}static getPropertyDescriptor(t,e,s){let{get:i,set:n}=Ut(this.prototype,t)??{get(){return this[e]},set(o){this[e]=o}};return{get:i,set(o){let c=i?.call(this);n?.call(this,o),this.requestUpdate(t,c,s)},configurable:!0,enumerable:!0}}static getPropertyOptions(t){return this.elementProperties.get(t)??ht}static _$Ei(){if(this.hasOwnProperty(C("elementProperties")))return;let t=Jt(this);t.finalize(),t.l!==void 0&&(this.l=[...t.l]),this.elementProperties=new Map(t.elementProperties)}static finalize(){if(this.hasOwnProperty(C("finalized")))return;if(this.finalized=!0,this._$Ei(),this.hasOwnProperty(C("properties"))){let e=this.properties,s=[...Nt(e),...Ht(e)];for(let i of s)this.createProperty(i,e[i])}let t=this[Symbol.metadata];if(t!==null){let e=litPropertyMetadata.get(t);if(e!==void 0)for(let[s,i]of e)this.elementProperties.set(s,i)}this._$Eh=new Map;for(let[e,s]of this.elementProperties){let i=this._$Eu(e,s);i!==void 0&&this._$Eh.set(i,e)}this.elementStyles=this.finalizeStyles(this.styles)}static finalizeStyles(t){let e=[];if(Array.isArray(t)){let s=new Set(t.flat(1/0).reverse());for(let i of s)e.unshift(V(i))}else t!==void 0&&e.push(V(t));return e}static _$Eu(t,e){let s=e.attribute;return s===!1?void 0:typeof s=="string"?s:typeof t=="string"?t.toLowerCase():void 0}constructor(){super(),this._$Ep=void 0,this.isUpdatePending=!1,this.hasUpdated=!1,this._$Em=null,this._$Ev()}_$Ev(){this._$ES=new Promise(t=>this.enableUpdating=t),this._$AL=new Map,this._$E_(),this.requestUpdate(),this.constructor.l?.forEach(t=>t(this))}addController(t){(this._$EO??=new Set).add(t),this.renderRoot!==void 0&&this.isConnected&&t.hostConnected?.()}removeController(t){this._$EO?.delete(t)}_$E_(){let t=new Map,e=this.constructor.elementProperties;for(let s of e.keys())this.hasOwnProperty(s)&&(t.set(s,this[s]),delete this[s]);t.size>0&&(this._$Ep=t)}createRenderRoot(){let t=this.shadowRoot??this.attachShadow(this.constructor.shadowRootOptions);return lt(t,this.constructor.elementStyles),t}connectedCallback(){this.renderRoot??=this.createRenderRoot(),this.enableUpdating(!0),this._$EO?.forEach(t=>t.hostConnected?.())}enableUpdating(t){}disconnectedCallback(){this._$EO?.forEach(t=>t.hostDisconnected?.())}attributeChangedCallback(t,e,s){this._$AK(t,s)}_$ET(t,e){let s=this.constructor.elementProperties.get(t),i=this.constructor._$Eu(t,s);if(i!==void 0&&s.reflect===!0){let n=(s.converter?.toAttribute!==void 0?s.converter:q).toAttribute(e,s.type);this._$Em=t,n==null?this.removeAttribute(i):this.setAttribute(i,n),this._$Em=null}}_$AK(t,e){let s=this.constructor,i=s._$Eh.get(t);if(i!==void 0&&this._$Em!==i){let n=s.getPropertyOptions(i),o=typeof n.converter=="function"?{fromAttribute:n.converter}:n.converter?.fromAttribute!==void 0?n.converter:q;this._$Em=i;let c=o.fromAttribute(e,n.type);this[i]=c??this._$Ej?.get(i)??c,this._$Em=null}}requestUpdate(t,e,s,i=!1,n){if(t!==void 0){let o=this.constructor;if(i===!1&&(n=this[t]),s??=o.getPropertyOptions(t),!((s.hasChanged??dt)(n,e)||s.useDefault&&s.reflect&&n===this._$Ej?.get(t)&&!this.hasAttribute(o._$Eu(t,s))))return;this.C(t,e,s)}this.isUpdatePending===!1&&(this._$ES=this._$EP())}C(t,e,{useDefault:s,reflect:i,wrapped:n},o){s&&!(this._$Ej??=new Map).has(t)&&(this._$Ej.set(t,o??e??this[t]),n!==!0||o!==void 0)||(this._$AL.has(t)||(this.hasUpdated||s||(e=void 0),this._$AL.set(t,e)),i===!0&&this._$Em!==t&&(this._$Eq??=new Set).add(t))}async _$EP(){this.isUpdatePending=!0;try{await this._$ES}catch(e){Promise.reject(e)}let t=this.scheduleUpdate();return t!=null&&await t,!this.isUpdatePending}scheduleUpdate(){return this.performUpdate()}performUpdate(){if(!this.isUpdatePending)return;if(!this.hasUpdated){if(this.renderRoot??=this.createRenderRoot(),this._$Ep){for(let[i,n]of this._$Ep)this[i]=n;this._$Ep=void 0}let s=this.constructor.elementProperties;if(s.size>0)for(let[i,n]of s){let{wrapped:o}=n,c=this[i];o!==!0||this._$AL.has(i)||c===void 0||this.C(i,void 0,n,c)}}let t=!1,e=this._$AL;try{t=this.shouldUpdate(e),t?(this.willUpdate(e),this._$EO?.forEach(s=>s.hostUpdate?.()),this.update(e)):this._$EM()}catch(s){throw t=!1,this._$EM(),s}t&&this._$AE(e)}willUpdate(t){}_$AE(t){this._$EO?.forEach(e=>e.hostUpdated?.()),this.hasUpdated||(this.hasUpdated=!0,this.firstUpdated(t)),this.updated(t)}_$EM(){this._$AL=new Map,this.isUpdatePending=!1}get updateComplete(){return this.getUpdateComplete()}getUpdateComplete(){return this._$ES}shouldUpdate(t){return!0}update(t){this._$Eq&&=this._$Eq.forEach(e=>this._$ET(e,this[e])),this._$EM()}updated(t){}firstUpdated(t){}};g.elementStyles=[],g.shadowRootOptions={mode:"open"},g[C("elementProperties")]=new Map,g[C("finalized")]=new Map,It?.({ReactiveElement:g}),(I.reactiveElementVersions??=[]).push("2.1.2");var X=globalThis,ut=r=>r,j=X.trustedTypes,pt=j?j.createPolicy("lit-html",{createHTML:r=>r}):void 0,$t="$lit$",m=`lit$${Math.random().toFixed(9).slice(2)}$`,vt="?"+m,jt=`<${vt}>`,y=document,k=()=>y.createComment(""),R=r=>r===null||typeof r!="object"&&typeof r!="function",Q=Array.isArray,Dt=r=>Q(r)||typeof r?.[Symbol.iterator]=="function",W=`[ 	
\f\r]`,L=/<(?:(!--|\/[^a-zA-Z])|(\/?[a-zA-Z][^>\s]*)|(\/?$))/g,_t=/-->/g,gt=/>/g,$=RegExp(`>|${W}(?:([^\\s"'>=/]+)(${W}*=${W}*(?:[^ 	
\f\r"'\`<>=]|("|')|))|$)`,"g"),ft=/'/g,mt=/"/g,yt=/^(?:script|style|textarea|title)$/i,tt=r=>(t,...e)=>({_$litType$:r,strings:t,values:e}),d=tt(1),Qt=tt(2),te=tt(3),w=Symbol.for("lit-noChange"),l=Symbol.for("lit-nothing"),bt=new WeakMap,v=y.createTreeWalker(y,129);function wt(r,t){if(!Q(r)||!r.hasOwnProperty("raw"))throw Error("invalid template strings array");return pt!==void 0?pt.createHTML(t):t}var Bt=(r,t)=>{let e=r.length-1,s=[],i,n=t===2?"<svg>":t===3?"<math>":"",o=L;for(let c=0;c<e;c++){let a=r[c],u,p,h=-1,_=0;for(;_<a.length&&(o.lastIndex=_,p=o.exec(a),p!==null);)_=o.lastIndex,o===L?p[1]==="!--"?o=_t:p[1]!==void 0?o=gt:p[2]!==void 0?(yt.test(p[2])&&(i=RegExp("</"+p[2],"g")),o=$):p[3]!==void 0&&(o=$):o===$?p[0]===">"?(o=i??L,h=-1):p[1]===void 0?h=-2:(h=o.lastIndex-p[2].length,u=p[1],o=p[3]===void 0?$:p[3]==='"'?mt:ft):o===mt||o===ft?o=$:o===_t||o===gt?o=L:(o=$,i=void 0);let f=o===$&&r[c+1].startsWith("/>")?" ":"";n+=o===L?a+jt:h>=0?(s.push(u),a.slice(0,h)+$t+a.slice(h)+m+f):a+m+(h===-2?c:f)}return[wt(r,n+(r[e]||"<?>")+(t===2?"</svg>":t===3?"</math>":"")),s]},P=class r{constructor({strings:t,_$litType$:e},s){let i;this.parts=[];let n=0,o=0,c=t.length-1,a=this.parts,[u,p]=Bt(t,e);if(this.el=r.createElement(u,s),v.currentNode=this.el.content,e===2||e===3){let h=this.el.content.firstChild;h.replaceWith(...h.childNodes)}for(;(i=v.nextNode())!==null&&a.length<c;){if(i.nodeType===1){if(i.hasAttributes())for(let h of i.getAttributeNames())if(h.endsWith($t)){let _=p[o++],f=i.getAttribute(h).split(m),H=/([.?@])?(.*)/.exec(_);a.push({type:1,index:n,name:H[2],strings:f,ctor:H[1]==="."?K:H[1]==="?"?Y:H[1]==="@"?G:x}),i.removeAttribute(h)}else h.startsWith(m)&&(a.push({type:6,index:n}),i.removeAttribute(h));if(yt.test(i.tagName)){let h=i.textContent.split(m),_=h.length-1;if(_>0){i.textContent=j?j.emptyScript:"";for(let f=0;f<_;f++)i.append(h[f],k()),v.nextNode(),a.push({type:2,index:++n});i.append(h[_],k())}}}else if(i.nodeType===8)if(i.data===vt)a.push({type:2,index:n});else{let h=-1;for(;(h=i.data.indexOf(m,h+1))!==-1;)a.push({type:7,index:n}),h+=m.length-1}n++}}static createElement(t,e){let s=y.createElement("template");return s.innerHTML=t,s}};function A(r,t,e=r,s){if(t===w)return t;let i=s!==void 0?e._$Co?.[s]:e._$Cl,n=R(t)?void 0:t._$litDirective$;return i?.constructor!==n&&(i?._$AO?.(!1),n===void 0?i=void 0:(i=new n(r),i._$AT(r,e,s)),s!==void 0?(e._$Co??=[])[s]=i:e._$Cl=i),i!==void 0&&(t=A(r,i._$AS(r,t.values),i,s)),t}var F=class{constructor(t,e){this._$AV=[],this._$AN=void 0,this._$AD=t,this._$AM=e}get parentNode(){return this._$AM.parentNode}get _$AU(){return this._$AM._$AU}u(t){let{el:{content:e},parts:s}=this._$AD,i=(t?.creationScope??y).importNode(e,!0);v.currentNode=i;let n=v.nextNode(),o=0,c=0,a=s[0];for(;a!==void 0;){if(o===a.index){let u;a.type===2?u=new M(n,n.nextSibling,this,t):a.type===1?u=new a.ctor(n,a.name,a.strings,this,t):a.type===6&&(u=new Z(n,this,t)),this._$AV.push(u),a=s[++c]}o!==a?.index&&(n=v.nextNode(),o++)}return v.currentNode=y,i}p(t){let e=0;for(let s of this._$AV)s!==void 0&&(s.strings!==void 0?(s._$AI(t,s,e),e+=s.strings.length-2):s._$AI(t[e])),e++}},M=class r{get _$AU(){return this._$AM?._$AU??this._$Cv}constructor(t,e,s,i){this.type=2,this._$AH=l,this._$AN=void 0,this._$AA=t,this._$AB=e,this._$AM=s,this.options=i,this._$Cv=i?.isConnected??!0}get parentNode(){let t=this._$AA.parentNode,e=this._$AM;return e!==void 0&&t?.nodeType===11&&(t=e.parentNode),t}get startNode(){return this._$AA}get endNode(){return this._$AB}_$AI(t,e=this){t=A(this,t,e),R(t)?t===l||t==null||t===""?(this._$AH!==l&&this._$AR(),this._$AH=l):t!==this._$AH&&t!==w&&this._(t):t._$litType$!==void 0?this.$(t):t.nodeType!==void 0?this.T(t):Dt(t)?this.k(t):this._(t)}O(t){return this._$AA.parentNode.insertBefore(t,this._$AB)}T(t){this._$AH!==t&&(this._$AR(),this._$AH=this.O(t))}_(t){this._$AH!==l&&R(this._$AH)?this._$AA.nextSibling.data=t:this.T(y.createTextNode(t)),this._$AH=t}$(t){let{values:e,_$litType$:s}=t,i=typeof s=="number"?this._$AC(t):(s.el===void 0&&(s.el=P.createElement(wt(s.h,s.h[0]),this.options)),s);if(this._$AH?._$AD===i)this._$AH.p(e);else{let n=new F(i,this),o=n.u(this.options);n.p(e),this.T(o),this._$AH=n}}_$AC(t){let e=bt.get(t.strings);return e===void 0&&bt.set(t.strings,e=new P(t)),e}k(t){Q(this._$AH)||(this._$AH=[],this._$AR());let e=this._$AH,s,i=0;for(let n of t)i===e.length?e.push(s=new r(this.O(k()),this.O(k()),this,this.options)):s=e[i],s._$AI(n),i++;i<e.length&&(this._$AR(s&&s._$AB.nextSibling,i),e.length=i)}_$AR(t=this._$AA.nextSibling,e){for(this._$AP?.(!1,!0,e);t!==this._$AB;){let s=ut(t).nextSibling;ut(t).remove(),t=s}}setConnected(t){this._$AM===void 0&&(this._$Cv=t,this._$AP?.(t))}},x=class{get tagName(){return this.element.tagName}get _$AU(){return this._$AM._$AU}constructor(t,e,s,i,n){this.type=1,this._$AH=l,this._$AN=void 0,this.element=t,this.name=e,this._$AM=i,this.options=n,s.length>2||s[0]!==""||s[1]!==""?(this._$AH=Array(s.length-1).fill(new String),this.strings=s):this._$AH=l}_$AI(t,e=this,s,i){let n=this.strings,o=!1;if(n===void 0)t=A(this,t,e,0),o=!R(t)||t!==this._$AH&&t!==w,o&&(this._$AH=t);else{let c=t,a,u;for(t=n[0],a=0;a<n.length-1;a++)u=A(this,c[s+a],e,a),u===w&&(u=this._$AH[a]),o||=!R(u)||u!==this._$AH[a],u===l?t=l:t!==l&&(t+=(u??"")+n[a+1]),this._$AH[a]=u}o&&!i&&this.j(t)}j(t){t===l?this.element.removeAttribute(this.name):this.element.setAttribute(this.name,t??"")}},K=class extends x{constructor(){super(...arguments),this.type=3}j(t){this.element[this.name]=t===l?void 0:t}},Y=class extends x{constructor(){super(...arguments),this.type=4}j(t){this.element.toggleAttribute(this.name,!!t&&t!==l)}},G=class extends x{constructor(t,e,s,i,n){super(t,e,s,i,n),this.type=5}_$AI(t,e=this){if((t=A(this,t,e,0)??l)===w)return;let s=this._$AH,i=t===l&&s!==l||t.capture!==s.capture||t.once!==s.once||t.passive!==s.passive,n=t!==l&&(s===l||i);i&&this.element.removeEventListener(this.name,this,s),n&&this.element.addEventListener(this.name,this,t),this._$AH=t}handleEvent(t){typeof this._$AH=="function"?this._$AH.call(this.options?.host??this.element,t):this._$AH.handleEvent(t)}},Z=class{constructor(t,e,s){this.element=t,this.type=6,this._$AN=void 0,this._$AM=e,this.options=s}get _$AU(){return this._$AM._$AU}_$AI(t){A(this,t)}};var zt=X.litHtmlPolyfillSupport;zt?.(P,M),(X.litHtmlVersions??=[]).push("3.3.3");var At=(r,t,e)=>{let s=e?.renderBefore??t,i=s._$litPart$;if(i===void 0){let n=e?.renderBefore??null;s._$litPart$=i=new M(t.insertBefore(k(),n),n,void 0,e??{})}return i._$AI(r),i};var et=globalThis,b=class extends g{constructor(){super(...arguments),this.renderOptions={host:this},this._$Do=void 0}createRenderRoot(){let t=super.createRenderRoot();return this.renderOptions.renderBefore??=t.firstChild,t}update(t){let e=this.render();this.hasUpdated||(this.renderOptions.isConnected=this.isConnected),super.update(t),this._$Do=At(e,this.renderRoot,this.renderOptions)}connectedCallback(){super.connectedCallback(),this._$Do?.setConnected(!0)}disconnectedCallback(){super.disconnectedCallback(),this._$Do?.setConnected(!1)}render(){return w}};b._$litElement$=!0,b.finalized=!0,et.litElementHydrateSupport?.({LitElement:b});var Vt=et.litElementPolyfillSupport;Vt?.({LitElement:b});(et.litElementVersions??=[]).push("4.2.2");var xt=new Set(["completed","failed","cancelled"]),T=r=>!xt.has(r.status);function st(r){return[...r].sort((t,e)=>t.created_at<e.created_at?-1:t.created_at>e.created_at?1:0)}function Et(r){return{running:r.filter(t=>t.status==="running"&&t.lane==="compile"),waiting:r.filter(t=>t.status==="queued"&&t.lane!=="upload")}}function St(r,t){return r.filter(e=>e.status==="running"&&e.lane==="remote"&&e.peer===t)}function Ct(r){return{running:r.filter(t=>t.status==="running"&&t.lane==="upload"),waiting:r.filter(t=>t.status==="queued"&&t.lane==="upload")}}function Lt(r,t,e,s){let i=[...t.values()].filter(n=>n.status==="running");if(r.job_type==="reset_build_env")return i.length?"waits for the running jobs to stop":"starts next";if(i.some(n=>n.job_type==="reset_build_env"))return"waits for the build environment reset";if(r.held){let n=r.depends_on?t.get(r.depends_on):void 0;return n&&T(n)?n.status==="running"?"waits for its compile (running)":"waits for its compile (queued)":"held: a clean or reset runs first"}return i.some(n=>n.configuration===r.configuration&&r.configuration)?"waits for another job of this configuration":e.running.length>=s?r.lane==="upload"?"waits for a free upload slot":"waits for a free compile worker":"starts next"}function it(r,t,e=Date.now()){if(!r)return null;let s=Date.parse(r),i=t?Date.parse(t):e;return Number.isNaN(s)||Number.isNaN(i)?null:Math.max(0,(i-s)/1e3)}function rt(r){if(r===null)return"";if(r<10)return`${r.toFixed(1)} s`;if(r<60)return`${Math.round(r)} s`;let t=Math.floor(r/60),e=Math.round(r%60);return e?`${t} min ${e} s`:`${t} min`}var qt=/\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)|\u001b[@-Z\\-_]/g;function nt(r){return r.replace(qt,"").replace(/\r/g,"")}function U(r){switch(r.job_type){case"reset_build_env":return"Reset build environment";case"clean":return"Clean";case"upload":return"Upload";default:return"Compile"}}function kt(r,t){return r.filter(e=>xt.has(e.status)).sort((e,s)=>(e.finished_at??"")<(s.finished_at??"")?1:-1).slice(0,t)}var Rt=z`
  :host {
    display: block;
  }
  ha-card {
    padding: 12px 16px 16px;
    color: var(--primary-text-color);
    overflow: hidden;
  }
  header {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    justify-content: space-between;
    gap: 8px;
    margin-bottom: 4px;
  }
  h1 {
    font-size: 1.25em;
    font-weight: 500;
    margin: 0;
  }
  h2 {
    display: flex;
    align-items: baseline;
    justify-content: space-between;
    gap: 8px;
    font-size: 0.95em;
    font-weight: 500;
    margin: 16px 0 6px;
    color: var(--secondary-text-color);
    text-transform: uppercase;
    letter-spacing: 0.04em;
  }
  h2 .meta {
    text-transform: none;
    letter-spacing: normal;
    font-weight: 400;
  }
  section {
    border-top: 1px solid var(--divider-color);
  }
  .row {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 4px 8px;
    padding: 6px 4px;
    border-radius: 6px;
    cursor: pointer;
  }
  .row:hover,
  .row.selected {
    background: var(--secondary-background-color);
  }
  .what {
    flex: 1 1 160px;
    min-width: 0;
  }
  .name {
    font-weight: 500;
    overflow-wrap: anywhere;
  }
  .detail {
    font-size: 0.85em;
    color: var(--secondary-text-color);
    overflow-wrap: anywhere;
  }
  .detail.error {
    color: var(--error-color);
  }
  .empty {
    padding: 4px;
    color: var(--secondary-text-color);
    font-size: 0.9em;
  }
  .bar {
    flex: 1 1 100%;
    height: 6px;
    border-radius: 3px;
    background: var(--divider-color);
    overflow: hidden;
  }
  .bar > div {
    height: 100%;
    background: var(--primary-color);
    transition: width 0.3s ease;
  }
  .bar.unknown > div {
    width: 30%;
    opacity: 0.6;
  }
  .status {
    font-size: 0.8em;
    font-weight: 500;
    padding: 2px 8px;
    border-radius: 10px;
    color: var(--text-primary-color, #fff);
    background: var(--secondary-text-color);
    white-space: nowrap;
  }
  .status.completed {
    background: var(--success-color, #43a047);
  }
  .status.failed {
    background: var(--error-color, #db4437);
  }
  .status.cancelled {
    background: var(--warning-color, #ffa600);
  }
  .status.running {
    background: var(--primary-color);
  }
  .duration {
    font-size: 0.85em;
    color: var(--secondary-text-color);
    white-space: nowrap;
  }
  button {
    font: inherit;
    font-size: 0.85em;
    font-weight: 500;
    padding: 4px 12px;
    min-height: 32px;
    border-radius: 16px;
    border: 1px solid var(--primary-color);
    background: transparent;
    color: var(--primary-color);
    cursor: pointer;
    white-space: nowrap;
  }
  button.primary {
    background: var(--primary-color);
    color: var(--text-primary-color, #fff);
  }
  button.danger {
    border-color: var(--error-color);
    color: var(--error-color);
  }
  button:disabled {
    opacity: 0.5;
    cursor: default;
  }
  .log {
    margin-top: 6px;
  }
  .log-head {
    display: flex;
    flex-wrap: wrap;
    align-items: center;
    gap: 8px;
    justify-content: space-between;
  }
  pre {
    margin: 6px 0 0;
    padding: 8px;
    max-height: 320px;
    overflow: auto;
    font-family: var(--code-font-family, monospace);
    font-size: 12px;
    line-height: 1.4;
    white-space: pre-wrap;
    overflow-wrap: anywhere;
    border-radius: 6px;
    background: var(--code-editor-background-color, var(--secondary-background-color));
    color: var(--primary-text-color);
  }
  .notice {
    padding: 8px;
    margin: 8px 0 0;
    border-radius: 6px;
    background: var(--secondary-background-color);
    color: var(--error-color);
    font-size: 0.9em;
  }
`;var D="esphome-pipeline-card",E="esphome_pipeline",Pt=5,Wt=2e3,Ft=3e3,Kt=200,N=class extends b{constructor(){super(...arguments);this._jobs=new Map;this._configurations=[];this._busy=!1;this._followLog=!0}static getStubConfig(){return{history:Pt,show_log:!0}}static getConfigForm(){return{schema:[{name:"title",selector:{text:{}}},{name:"entry_id",selector:{config_entry:{integration:E}}},{name:"history",selector:{number:{min:0,max:50,mode:"box"}}},{name:"show_log",selector:{boolean:{}}}],computeLabel:e=>({title:"Title",entry_id:"ESPHome Pipeline entry (only needed with several)",history:"Recent results shown",show_log:"Show the log of the selected job"})[e.name]??e.name}}setConfig(e){if(!e||typeof e!="object")throw new Error("Invalid configuration");if(e.history!==void 0&&(typeof e.history!="number"||e.history<0))throw new Error("history must be a number of 0 or more");let s=this._config!==void 0&&this._config.entry_id!==e.entry_id;this._config=e,s&&(this._unsubscribeAll(),this._subscribe())}getCardSize(){let e=[...this._jobs.values()].filter(T).length,s=this._configurations.filter(i=>i.update_available).length;return 4+e+s+Math.ceil(this._history/2)+(this._log?6:0)}getGridOptions(){return{columns:12,min_columns:6,min_rows:4}}connectedCallback(){super.connectedCallback(),this._subscribe(),this._clock=window.setInterval(()=>{[...this._jobs.values()].some(e=>e.status==="running")&&this.requestUpdate()},1e3)}disconnectedCallback(){super.disconnectedCallback(),window.clearInterval(this._clock),this._unsubscribeAll()}updated(e){if(e.has("hass")&&this.hass&&this.hass.connection!==this._subscribedWith&&(this._unsubscribeAll(),this._subscribe()),e.has("_log")&&this._followLog){let s=this.renderRoot.querySelector("pre");s&&(s.scrollTop=s.scrollHeight)}}_subscribe(){if(!this.hass||!this.isConnected||this._unsubscribeJobs)return;let e=this.hass.connection;this._subscribedWith=e;let s={type:`${E}/subscribe_jobs`};this._config?.entry_id&&(s.entry_id=this._config.entry_id),this._unsubscribeJobs=e.subscribeMessage(i=>this._onJobsEvent(i),s).then(i=>(this._error=void 0,i),i=>{this._error=i?.message??String(i),this._unsubscribeJobs=void 0,this._scheduleResubscribe()}),this._selected&&this._subscribeLog(this._selected)}_scheduleResubscribe(){window.clearTimeout(this._retry),this._retry=window.setTimeout(()=>this._subscribe(),Ft)}_unsubscribeAll(){window.clearTimeout(this._retry),this._release(this._unsubscribeJobs),this._unsubscribeJobs=void 0,this._unsubscribeLogNow(),this._subscribedWith=void 0}_unsubscribeLogNow(){this._release(this._unsubscribeLog),this._unsubscribeLog=void 0}_release(e){e?.then(s=>s?.()).catch(()=>{})}_onJobsEvent(e){switch(e.event){case"snapshot":this._snapshot=e,this._jobs=new Map(e.jobs.map(s=>[s.job_id,s])),this._configurations=e.configurations;break;case"jobs":{let s=new Map(this._jobs);for(let i of e.jobs)s.set(i.job_id,i);this._jobs=this._trim(s);break}case"configurations":this._configurations=e.configurations;break;case"ended":this._unsubscribeAll(),this._scheduleResubscribe();break}}_trim(e){let s=st([...e.values()].filter(i=>!T(i)));for(let i of s.slice(0,Math.max(0,s.length-Kt)))e.delete(i.job_id);return e}_select(e){if(this._config?.show_log!==!1){if(this._selected===e){this._selected=void 0,this._log=void 0,this._unsubscribeLogNow();return}this._selected=e,this._subscribeLog(e)}}_subscribeLog(e){if(!this.hass)return;this._unsubscribeLogNow(),this._log=void 0,this._followLog=!0;let s={type:`${E}/subscribe_log`,job_id:e};this._config?.entry_id&&(s.entry_id=this._config.entry_id),this._unsubscribeLog=this.hass.connection.subscribeMessage(i=>this._onLogEvent(e,i),s).catch(i=>{this._error=i?.message??String(i)})}_onLogEvent(e,s){if(e!==this._selected)return;let i=this._log;switch(s.event){case"log":this._log={job:s.job,lines:s.lines.map(nt),elided:s.elided,done:!1};break;case"lines":{if(!i)return;let n=[...i.lines];s.dropped&&n.push(`… ${s.dropped} lines not shown (the browser fell behind) …`),n.push(...s.lines.map(nt));let o=Math.max(0,n.length-Wt);this._log={...i,lines:n.slice(o),elided:i.elided+o};break}case"job":i&&(this._log={...i,job:s.job});break;case"result":i&&(this._log={...i,job:s.job,done:!0});break;case"ended":this._unsubscribeLogNow();break}}async _command(e){if(this.hass){this._config?.entry_id&&(e.entry_id=this._config.entry_id),this._busy=!0;try{let s=await this.hass.connection.sendMessagePromise(e);return this._error=void 0,s}catch(s){this._error=s?.message??String(s);return}finally{this._busy=!1}}}_install(e){return this._command({type:`${E}/install`,configuration:[e]})}async _installOutdated(){let e=await this._command({type:`${E}/install_outdated`});e&&this.dispatchEvent(new CustomEvent("esphome-pipeline-installed",{detail:e}))}_cancel(e,s){e.stopPropagation(),this._command({type:`${E}/cancel`,job_id:s})}async _copyLog(){let e=this._log?.lines.join(`
`)??"";try{await navigator.clipboard.writeText(e)}catch{let s=document.createElement("textarea");s.value=e,document.body.appendChild(s),s.select(),document.execCommand("copy"),s.remove()}}_onLogScroll(e){let s=e.target;this._followLog=s.scrollHeight-s.scrollTop-s.clientHeight<24}get _history(){return this._config?.history??Pt}get _isAdmin(){return this.hass?.user?.is_admin??!1}render(){let e=this._config?.title||this._snapshot?.title||"ESPHome Pipeline";if(!this._snapshot)return d`<ha-card>
        <header><h1>${e}</h1></header>
        ${this._error?d`<div class="notice">${this._error}</div>`:d`<div class="empty">Loading…</div>`}
      </ha-card>`;let s=st(this._jobs.values()),i=this._jobs,n=Et(s),o=Ct(s),c=this._snapshot.lanes;return d`<ha-card>
      <header>
        <h1>${e}</h1>
        ${this._snapshot.running?l:d`<span class="status failed">lanes stopped</span>`}
      </header>
      ${this._error?d`<div class="notice">${this._error}</div>`:l}
      ${this._renderLane("Compile","compile",n,c.compile.workers,i,`${c.compile.workers} worker${c.compile.workers===1?"":"s"}`)}
      ${this._snapshot.peers.map(a=>this._renderLane(`Build peer ${a.label}`,`peer-${a.label}`,{running:St(s,a.label),waiting:[]},1,i,"1 slot"))}
      ${this._renderLane("Upload","upload",o,c.upload.slots,i,`${c.upload.slots} slot${c.upload.slots===1?"":"s"}`)}
      ${this._renderUpdates()} ${this._renderResults(s)} ${this._renderLog()}
    </ha-card>`}_renderLane(e,s,i,n,o,c){return d`<section class="lane" data-lane=${s}>
      <h2>${e} <span class="meta">${c}</span></h2>
      ${i.running.length===0&&i.waiting.length===0?d`<div class="empty">Idle</div>`:l}
      ${i.running.map(a=>this._renderRunning(a))}
      ${i.waiting.map(a=>this._renderWaiting(a,Lt(a,o,i,n)))}
    </section>`}_configurationName(e){return this._configurations.find(s=>s.configuration===e)?.name??e}_jobName(e){return e.configuration?this._configurationName(e.configuration):"All configurations"}_cancelButton(e){return!this._isAdmin||!T(e)?l:d`<button class="danger cancel" ?disabled=${this._busy} @click=${s=>this._cancel(s,e.job_id)}>
      Cancel
    </button>`}_row(e,s,i){return d`<div
      class="row job ${this._selected===e.job_id?"selected":""}"
      data-job-id=${e.job_id}
      data-state=${i}
      data-configuration=${e.configuration}
      data-job-type=${e.job_type}
      @click=${()=>this._select(e.job_id)}
    >
      ${s}
    </div>`}_renderRunning(e){let s=rt(it(e.started_at,null)),i=e.progress;return this._row(e,d`<div class="what">
          <div class="name">${this._jobName(e)}</div>
          <div class="detail">${U(e)}${e.peer?` on ${e.peer}`:""} · running ${s}</div>
        </div>
        <span class="status running">${i===null?"running":`${i} %`}</span>
        ${this._cancelButton(e)}
        <div
          class="bar ${i===null?"unknown":""}"
          role="progressbar"
          aria-valuemin="0"
          aria-valuemax="100"
          aria-valuenow=${i??l}
        >
          <div style="width: ${i??30}%"></div>
        </div>`,"running")}_renderWaiting(e,s){return this._row(e,d`<div class="what">
          <div class="name">${this._jobName(e)}</div>
          <div class="detail reason">${U(e)} · ${s}</div>
        </div>
        <span class="status">${e.held?"held":"queued"}</span>
        ${this._cancelButton(e)}`,e.held?"held":"queued")}_renderUpdates(){let e=this._configurations.filter(s=>s.update_available);return d`<section class="updates">
      <h2>
        Updates available
        ${this._isAdmin&&e.length?d`<button class="primary install-all" ?disabled=${this._busy} @click=${()=>this._installOutdated()}>
              Install all outdated (${e.length})
            </button>`:l}
      </h2>
      ${e.length===0?d`<div class="empty">Every installed configuration is current</div>`:l}
      ${e.map(s=>d`<div class="row update" data-configuration=${s.configuration}>
          <div class="what">
            <div class="name">${s.name}</div>
            <div class="detail">${s.configuration} · installed ${s.installed?.slice(0,8)} → ${s.latest.slice(0,8)}</div>
          </div>
          ${this._isAdmin?d`<button class="install" ?disabled=${this._busy} @click=${()=>this._install(s.configuration)}>Install</button>`:l}
        </div>`)}
    </section>`}_renderResults(e){if(this._history===0)return l;let s=kt(e,this._history);return d`<section class="results">
      <h2>Recent results</h2>
      ${s.length===0?d`<div class="empty">No finished jobs yet</div>`:l}
      ${s.map(i=>this._row(i,d`<div class="what">
              <div class="name">${this._jobName(i)}</div>
              <div class="detail ${i.status==="failed"?"error":""}">
                ${U(i)}${i.skipped?" · skipped (nothing to do)":""}${i.error?` · ${i.error}`:""}
              </div>
            </div>
            <span class="duration">${rt(it(i.started_at,i.finished_at))}</span>
            <span class="status ${i.status}">${i.status}</span>`,i.status))}
    </section>`}_renderLog(){if(!this._selected||this._config?.show_log===!1)return l;let e=this._log,s=e?.job??this._jobs.get(this._selected);return d`<section class="log">
      <h2>Log</h2>
      <div class="log-head">
        <div class="what">
          <div class="name">${s?`${this._jobName(s)} · ${U(s)}`:this._selected}</div>
          <div class="detail">
            ${s?s.status:""}${e?.elided?` · ${e.elided} earlier lines not kept`:""}
          </div>
        </div>
        <button class="copy" @click=${()=>this._copyLog()}>Copy</button>
        <button class="close" @click=${()=>this._select(this._selected??"")}>Close</button>
      </div>
      <pre @scroll=${i=>this._onLogScroll(i)}>${e?e.lines.join(`
`):"Loading…"}</pre>
    </section>`}};N.styles=Rt,N.properties={hass:{attribute:!1},_config:{state:!0},_snapshot:{state:!0},_jobs:{state:!0},_configurations:{state:!0},_selected:{state:!0},_log:{state:!0},_error:{state:!0},_busy:{state:!0}};customElements.get(D)||customElements.define(D,N);window.customCards=window.customCards??[];window.customCards.some(r=>r.type===D)||window.customCards.push({type:D,name:"ESPHome Pipeline",description:"The fleet's firmware at a glance: lanes, queue, results, updates and live logs.",preview:!1,documentationURL:"https://github.com/esphome-pipeline/esphome-pipeline/blob/main/docs/dashboard.md"});export{N as EsphomePipelineCard};
/*! Bundled license information:

@lit/reactive-element/css-tag.js:
  (**
   * @license
   * Copyright 2019 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)

@lit/reactive-element/reactive-element.js:
lit-html/lit-html.js:
lit-element/lit-element.js:
  (**
   * @license
   * Copyright 2017 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)

lit-html/is-server.js:
  (**
   * @license
   * Copyright 2022 Google LLC
   * SPDX-License-Identifier: BSD-3-Clause
   *)
*/
